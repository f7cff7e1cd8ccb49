//! The only tokio glue: builds the stages, creates the bounded channels, spawns the tasks and
//! runs the shutdown order.
//!
//! ```text
//! consumer_loop ──raw (channel_capacity)──▶ process_loop ──processed (channel_capacity)──▶ sink_loop
//!                                                                 ≤ max_in_flight messages awaiting delivery
//! ```
//!
//! Shutdown: the token stops `consumer_loop`, which drops its sender; `process_loop` ends when
//! its input closes, then `sink_loop` once every in-flight delivery has its report. Then the
//! producer is flushed and the stored offsets committed. All of it within
//! `shutdown.drain_timeout`; past that the remaining tasks are aborted, what is finished is
//! still committed, and the run reports that it did not drain.

pub mod server;
pub mod signals;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use prometheus::Registry;
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::intel::feeds::{FeedSpec, LocalFeeds};
use crate::intel::mmdb::Mmdb;
use crate::intel::talos::Talos;
use crate::intel::ConfiguredProviders;
use crate::kafka::consumer::{
    commit_stored, create_consumer, raw_event_from, EventConsumer, PipelineConsumerContext,
};
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::producer::{create_producer, OutputPublisher, ProducerStatsContext};
use crate::model::Origin;
use crate::model::RawEvent;
use crate::model::{Output, Processed};
use crate::remote::slot::{Patience, ProviderSlot, SlotLimits};
use crate::remote::{RemoteStage, RevisionRules, RevisionSink};
use crate::report::scheduled::{run_scheduled_reports, ReportFeed};
use crate::settings::Settings;
use crate::stages::dedup::DedupCache;
use crate::stages::filter::IpFilter;
use crate::stages::parse::FormatRegistry;
use crate::stages::process::{Processor, ProcessorOptions};
use crate::stages::score::ScoringModel;
use crate::telemetry::events::{
    BackpressureWaited, CacheSampled, FeedLoaded, FeedReloadFinished, KafkaClientError,
    MessageCompleted, OffsetStored,
};
use crate::telemetry::Metrics;
use futures::future::BoxFuture;
use server::Health;

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A setting that only fails when used (a feed file, a secret file).
    #[error("{0}")]
    Config(String),
    /// Kafka is reachable but not usable as configured (missing topic, bad client settings).
    #[error("{0}")]
    Kafka(String),
    /// The metrics listener could not bind.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// Address.
        addr: String,
        /// Error.
        error: std::io::Error,
    },
}

impl AppError {
    /// Exit code: 2 for configuration problems, 1 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Config(_) => 2,
            AppError::Kafka(_) | AppError::Listen { .. } => 1,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// True when every consumed message was finished and committed before the deadline.
    pub drained: bool,
    /// Messages consumed but not finished when the run ended.
    pub unfinished: usize,
    /// True when a stage stopped on its own (a bug) and forced the shutdown.
    pub stage_failed: bool,
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(
    settings: Settings,
    registry: Registry,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<RunSummary, AppError> {
    let feeds = load_feeds(&settings, &metrics).await?;
    let health = Health::default();
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));

    let producer = create_producer(
        &settings,
        ProducerStatsContext::new(metrics.clone(), health.producer_connected.clone()),
    )
    .map_err(|e| AppError::Kafka(e.to_string()))?;
    if !wait_for_topics(&producer, &settings, &shutdown).await? {
        return Ok(RunSummary {
            drained: true,
            unfinished: 0,
            stage_failed: false,
        });
    }
    health.producer_connected.store(true, Ordering::Relaxed);

    let listen = settings
        .listen_addr()
        .map_err(|e| AppError::Config(e.to_string()))?;
    let listener = server::bind(listen)
        .await
        .map_err(|error| AppError::Listen {
            addr: listen.to_string(),
            error,
        })?;
    let server_stop = CancellationToken::new();
    let server_task = tokio::spawn(server::serve(
        listener,
        registry,
        health.clone(),
        server_stop.clone(),
    ));

    let consumer_settings = settings.clone();
    let consumer_context = PipelineConsumerContext::new(
        metrics.clone(),
        tracker.clone(),
        health.consumer_assigned.clone(),
    );
    let assigned_nothing = consumer_context.assigned_nothing();
    let consumer =
        tokio::task::spawn_blocking(move || create_consumer(&consumer_settings, consumer_context))
            .await
            .map_err(|e| AppError::Kafka(format!("consumer creation failed: {e}")))?
            .map(Arc::new)
            .map_err(|e| AppError::Kafka(e.to_string()))?;
    let providers = build_providers(&settings).await?;
    let processor = build_processor_with(&settings, feeds.clone(), &providers, metrics.clone())?;
    let publisher = OutputPublisher::new(producer.clone(), &settings, metrics.clone());
    info!(
        brokers = %settings.kafka.brokers,
        topics = ?settings.kafka.input_topics,
        output = %settings.kafka.output_topic,
        dlq = %settings.kafka.dlq_topic,
        remote_providers = ?providers.remote.iter().map(|(p, _)| p.name()).collect::<Vec<_>>(),
        local_providers = ?providers.local.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "threatsift running"
    );

    // Capacities bound memory; a full channel stops the stage before it.
    let (raw_tx, raw_rx) = mpsc::channel(settings.pipeline.channel_capacity);
    let (processed_tx, processed_rx) = mpsc::channel(settings.pipeline.channel_capacity);
    let housekeeping_stop = CancellationToken::new();
    let stage_failed = Arc::new(AtomicBool::new(false));
    let dedup = processor.dedup().clone();
    // Scheduled reports (off when report.interval is 0): fed by the sink, stopped after it.
    let report_stop = CancellationToken::new();
    let (report_feed, report_task) = if settings.report.interval.is_zero() {
        (None, None)
    } else {
        let (feed, receiver) = ReportFeed::new(metrics.clone());
        let task = tokio::spawn(run_scheduled_reports(
            settings.report.clone(),
            receiver,
            report_stop.clone(),
            metrics.clone(),
        ));
        (Some(feed), Some(task))
    };
    // Remote providers (none enabled: no stage): revisions go out through the same publisher.
    let remote = build_remote_stage(
        &settings,
        &providers,
        Arc::new(PublishRevisions {
            publisher: publisher.clone(),
            report_feed: report_feed.clone(),
        }),
        metrics.clone(),
    )?;
    let remote_stop = CancellationToken::new();
    let mut remote_tasks = remote
        .as_ref()
        .map(|stage| stage.spawn_dispatchers(&remote_stop));
    let consumer_task = spawn_stage(
        "consume",
        consumer_loop(
            consumer.clone(),
            tracker.clone(),
            raw_tx,
            metrics.clone(),
            shutdown.clone(),
        ),
        &shutdown,
        &stage_failed,
    );
    let process_task = spawn_stage(
        "process",
        process_loop(
            processor.with_remote_stage(remote.clone()),
            raw_rx,
            processed_tx,
            metrics.clone(),
        ),
        &shutdown,
        &stage_failed,
    );
    let mut sink_task = spawn_stage(
        "sink",
        sink_loop(
            processed_rx,
            SinkTargets {
                publisher,
                report_feed,
                remote: remote.clone(),
            },
            consumer.clone(),
            tracker.clone(),
            settings.pipeline.max_in_flight,
            metrics.clone(),
        ),
        &shutdown,
        &stage_failed,
    );
    let watchdog_task = tokio::spawn(assignment_watchdog(
        consumer.clone(),
        settings.clone(),
        assigned_nothing,
        housekeeping_stop.clone(),
    ));
    let housekeeping_task = tokio::spawn(housekeeping_loop(
        feeds,
        providers.mmdb.clone(),
        providers.talos.clone(),
        dedup,
        settings.intel.feeds_reload_interval,
        metrics.clone(),
        housekeeping_stop.clone(),
    ));

    shutdown.cancelled().await;
    let deadline = Instant::now() + settings.shutdown.drain_timeout;
    info!(
        deadline_secs = settings.shutdown.drain_timeout.as_secs_f64(),
        "draining"
    );
    // The sink finishes last: its end means every consumed message was delivered or given up.
    let drained = match timeout(settings.shutdown.drain_timeout, &mut sink_task).await {
        Ok(_) => true,
        Err(_) => {
            warn!("drain deadline passed; committing what is finished");
            for task in [&consumer_task, &process_task, &sink_task] {
                task.abort();
            }
            false
        }
    };
    // Aborted tasks release their clients (consumer and producer handles) once joined; the
    // sink's handle was consumed if it finished.
    let _ = consumer_task.await;
    let _ = process_task.await;
    if !drained {
        let _ = sink_task.await;
    }
    housekeeping_stop.cancel();
    // Remote lookups already sent get a moment to land their revisions; queued ones are lost
    // with the process (their records keep `pending`).
    remote_stop.cancel();
    if let Some(tasks) = remote_tasks.as_mut() {
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .min(REMOTE_GRACE);
        if timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            warn!(
                waiting = remote.as_ref().map_or(0, |r| r.waiting()),
                "remote lookups still running at shutdown were abandoned"
            );
            tasks.abort_all();
        }
    }
    // The last interval's report holds every record the sink published.
    report_stop.cancel();
    if let Some(task) = report_task {
        // Room for the last report's narrative call (bounded by its own timeout) and a write.
        let wait = settings.report.narrative.timeout + Duration::from_secs(10);
        if timeout(wait, task).await.is_err() {
            warn!("the last scheduled report was not finished in time");
        }
    }
    // Flush, commit and leave the group, each bounded by what is left of the deadline (at
    // least a moment, so a drain that used it all still commits what is finished).
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500))
    };
    let flush_producer = producer.clone();
    let flush_for = remaining();
    let flush = tokio::task::spawn_blocking(move || flush_producer.flush(flush_for));
    let _ = timeout(flush_for, flush).await;
    let commit_consumer = consumer.clone();
    let commit_metrics = metrics.clone();
    let commit =
        tokio::task::spawn_blocking(move || commit_stored(&commit_consumer, &commit_metrics));
    let _ = timeout(remaining(), commit).await;
    let unfinished = tracker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .in_flight();
    // Leave the group now rather than at drop, so a restarted daemon is assigned at once.
    let close_consumer = consumer;
    let close = tokio::task::spawn_blocking(move || {
        close_consumer.unsubscribe();
        drop(close_consumer);
    });
    let _ = timeout(remaining(), close).await;
    server_stop.cancel();
    let _ = timeout(Duration::from_secs(1), server_task).await;
    let _ = housekeeping_task.await;
    let _ = watchdog_task.await;
    let stage_failed = stage_failed.load(Ordering::Relaxed);
    info!(drained, unfinished, stage_failed, "stopped");
    Ok(RunSummary {
        drained: drained && unfinished == 0 && !stage_failed,
        unfinished,
        stage_failed,
    })
}

/// Spawns a pipeline stage. A stage that ends before shutdown was requested, or panics, is a
/// bug: it is logged, marked, and shuts the daemon down so that an orchestrator restarts it.
fn spawn_stage(
    name: &'static str,
    stage: impl std::future::Future<Output = ()> + Send + 'static,
    shutdown: &CancellationToken,
    failed: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let shutdown = shutdown.clone();
    let failed = failed.clone();
    tokio::spawn(async move {
        let result = std::panic::AssertUnwindSafe(stage).catch_unwind().await;
        if result.is_err() || !shutdown.is_cancelled() {
            tracing::error!(
                stage = name,
                panicked = result.is_err(),
                "pipeline stage stopped unexpectedly; shutting down"
            );
            failed.store(true, Ordering::Relaxed);
            shutdown.cancel();
        }
    })
}

async fn load_feeds(settings: &Settings, metrics: &Metrics) -> Result<Arc<LocalFeeds>, AppError> {
    let specs: Vec<FeedSpec> = settings
        .feed_paths()
        .into_iter()
        .map(|(name, path)| FeedSpec { name, path })
        .collect();
    let feeds = tokio::task::spawn_blocking(move || LocalFeeds::load(specs))
        .await
        .map_err(|e| AppError::Config(format!("feed loading panicked: {e}")))?
        .map_err(|e| AppError::Config(format!("feeds: {e}")))?;
    emit_feeds_loaded(&feeds, metrics);
    Ok(Arc::new(feeds))
}

fn emit_feeds_loaded(feeds: &LocalFeeds, metrics: &Metrics) {
    for feed in feeds.current().feeds() {
        FeedLoaded {
            feed: feed.name(),
            entries: feed.len(),
            skipped_lines: feed.skipped_lines(),
            first_skipped: feed.first_skipped().first(),
        }
        .emit(metrics);
    }
}

/// How long lookups already sent may finish after the sink drained.
const REMOTE_GRACE: Duration = Duration::from_secs(5);

/// Builds the enabled providers (reads keys and local files: blocking I/O, off the runtime).
pub async fn build_providers(settings: &Settings) -> Result<ConfiguredProviders, AppError> {
    let providers = settings.providers.clone();
    tokio::task::spawn_blocking(move || ConfiguredProviders::build(&providers))
        .await
        .map_err(|e| AppError::Config(format!("provider set-up panicked: {e}")))?
        .map_err(|e| AppError::Config(e.to_string()))
}

/// The remote stage over the enabled remote providers, or `None` when there are none.
pub fn build_remote_stage(
    settings: &Settings,
    providers: &ConfiguredProviders,
    sink: Arc<dyn RevisionSink>,
    metrics: Arc<Metrics>,
) -> Result<Option<Arc<RemoteStage>>, AppError> {
    if providers.remote.is_empty() {
        return Ok(None);
    }
    let slots = providers
        .remote
        .iter()
        .map(|(provider, provider_settings)| {
            Arc::new(ProviderSlot::new(
                provider.clone(),
                SlotLimits::from_settings(provider_settings, settings.intel.provider_cache_entries),
                metrics.clone(),
            ))
        })
        .collect();
    Ok(Some(Arc::new(RemoteStage::new(
        slots,
        settings.intel.remote_queue_capacity,
        RevisionRules {
            scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
            min_verdict: settings.publish.min_verdict,
        },
        sink,
        Patience {
            max_wait: settings.intel.remote_max_wait,
        },
        metrics,
    ))))
}

/// Revised records go to the output topic (and the scheduled report) like first records.
struct PublishRevisions {
    publisher: OutputPublisher,
    report_feed: Option<ReportFeed>,
}

impl RevisionSink for PublishRevisions {
    fn publish(&self, output: Output, origin: Origin) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(payload) = self.publisher.deliver(output, &origin).await {
                if let Some(feed) = &self.report_feed {
                    feed.offer(payload);
                }
            }
        })
    }
}

/// Assembles the processing stages from the settings, building the providers it enables
/// (tests and benches; the daemon shares one set with the remote stage).
pub fn build_processor(
    settings: &Settings,
    feeds: Arc<LocalFeeds>,
    metrics: Arc<Metrics>,
) -> Result<Processor, AppError> {
    let providers = ConfiguredProviders::build(&settings.providers)
        .map_err(|e| AppError::Config(e.to_string()))?;
    build_processor_with(settings, feeds, &providers, metrics)
}

/// Assembles the processing stages from the settings and the built providers.
pub fn build_processor_with(
    settings: &Settings,
    feeds: Arc<LocalFeeds>,
    providers: &ConfiguredProviders,
    metrics: Arc<Metrics>,
) -> Result<Processor, AppError> {
    let ignore = settings
        .ignore_cidrs()
        .map_err(|e| AppError::Config(e.to_string()))?;
    Ok(Processor::new(
        FormatRegistry::builtin(settings.registry_options()),
        IpFilter::new(settings.filter.allow_documentation_ranges, ignore),
        DedupCache::new(settings.dedup.ttl, settings.dedup.max_entries),
        feeds,
        ProcessorOptions {
            max_line_bytes: settings.parse.max_line_bytes,
            max_decompressed_bytes: settings.parse.max_decompressed_bytes,
            dlq_max_payload_bytes: settings.dlq.max_payload_bytes,
            min_verdict: settings.publish.min_verdict,
            scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
            provider_entries: providers.entries.clone(),
            local_providers: providers.local.clone(),
            remote: !providers.remote.is_empty(),
        },
        metrics,
    ))
}

/// Waits until the brokers answer, then checks that the output and DLQ topics exist.
/// Returns `Ok(false)` when shutdown was requested while waiting.
async fn wait_for_topics(
    producer: &crate::kafka::producer::OutputProducer,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Result<bool, AppError> {
    let mut logged = false;
    loop {
        let client = producer.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            client.client().fetch_metadata(None, Duration::from_secs(5))
        })
        .await
        .map_err(|e| AppError::Kafka(format!("metadata task failed: {e}")))?;
        match metadata {
            Ok(metadata) => {
                // Only "unknown topic" is final; other topic errors (a leader election) pass.
                let state = |name: &str| match metadata.topics().iter().find(|t| t.name() == name) {
                    None => TopicState::Missing,
                    Some(t) => match t.error() {
                        None => TopicState::Ready,
                        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
                            TopicState::Missing
                        }
                        Some(_) => TopicState::NotReady,
                    },
                };
                let mut ready = true;
                for topic in [&settings.kafka.output_topic, &settings.kafka.dlq_topic] {
                    match state(topic) {
                        TopicState::Ready => {}
                        TopicState::NotReady => ready = false,
                        TopicState::Missing => {
                            return Err(AppError::Kafka(format!(
                                "topic `{topic}` does not exist on {}; create it (scripts/broker.sh does for the tests)",
                                settings.kafka.brokers
                            )))
                        }
                    }
                }
                if ready {
                    for topic in &settings.kafka.input_topics {
                        if state(topic) != TopicState::Ready {
                            warn!(topic = %topic, "input topic not available yet; waiting for it");
                        }
                    }
                    return Ok(true);
                }
                // Cancellation-safe: sleeping holds no state.
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(e) => {
                if !logged {
                    warn!(brokers = %settings.kafka.brokers, error = %e, "kafka not reachable yet; retrying");
                    logged = true;
                }
                // Cancellation-safe: sleeping holds no state.
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum TopicState {
    Ready,
    NotReady,
    Missing,
}

async fn consumer_loop(
    consumer: Arc<EventConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    raw_tx: mpsc::Sender<(RawEvent, Instant)>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    loop {
        // Biased towards shutdown so a busy topic cannot delay it; `recv` is cancellation-safe.
        let message = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            message = consumer.recv() => message,
        };
        let raw = match message {
            Ok(message) => {
                use rdkafka::message::Message;
                let topic = match topics.get(message.topic()) {
                    Some(topic) => topic.clone(),
                    None => {
                        let topic: Arc<str> = Arc::from(message.topic());
                        topics.insert(message.topic().to_owned(), topic.clone());
                        topic
                    }
                };
                raw_event_from(&message, topic)
            }
            Err(error) => {
                KafkaClientError {
                    kind: crate::kafka::error_kind(&error),
                    error: &error.to_string(),
                }
                .emit(&metrics);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tracker.lock().unwrap_or_else(|p| p.into_inner()).begin(
            &raw.origin.topic,
            raw.origin.partition,
            raw.origin.offset,
        );
        let item = (raw, Instant::now());
        match raw_tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => break,
            Err(mpsc::error::TrySendError::Full(item)) => {
                let waited_from = Instant::now();
                let origin = item.0.origin.clone();
                let sent = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => false,
                    result = raw_tx.send(item) => result.is_ok(),
                };
                if !sent {
                    // Dropped on shutdown: abandoned, so its offset is never stored and the
                    // next owner reads it again; it is not unfinished work.
                    tracker.lock().unwrap_or_else(|p| p.into_inner()).abandon(
                        &origin.topic,
                        origin.partition,
                        origin.offset,
                    );
                }
                BackpressureWaited {
                    stage: "consume",
                    waited: waited_from.elapsed(),
                }
                .emit(&metrics);
                if !sent {
                    break;
                }
            }
        }
    }
}

async fn process_loop(
    processor: Processor,
    mut raw_rx: mpsc::Receiver<(RawEvent, Instant)>,
    processed_tx: mpsc::Sender<Processed>,
    metrics: Arc<Metrics>,
) {
    while let Some((raw, received)) = raw_rx.recv().await {
        // A panic on one message is a bug, not a reason to stop the stream: the message goes
        // to the DLQ as `internal_error` and processing goes on.
        let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            processor.process_message(&raw, received)
        }))
        .unwrap_or_else(|_| processor.dead_letter_internal_error(&raw, received));
        match processed_tx.try_send(processed) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => break,
            Err(mpsc::error::TrySendError::Full(processed)) => {
                let waited_from = Instant::now();
                if processed_tx.send(processed).await.is_err() {
                    break;
                }
                BackpressureWaited {
                    stage: "process",
                    waited: waited_from.elapsed(),
                }
                .emit(&metrics);
            }
        }
    }
}

/// Where the sink hands what it delivered: the producer, then the scheduled report and the
/// remote stage.
#[derive(Clone)]
struct SinkTargets {
    publisher: OutputPublisher,
    report_feed: Option<ReportFeed>,
    remote: Option<Arc<RemoteStage>>,
}

async fn sink_loop(
    mut processed_rx: mpsc::Receiver<Processed>,
    targets: SinkTargets,
    consumer: Arc<EventConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    max_in_flight: usize,
    metrics: Arc<Metrics>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut input_open = true;
    loop {
        if !input_open && in_flight.is_empty() {
            break;
        }
        // Biased towards completions so the window drains before it grows; both branches are
        // cancellation-safe (`next` on FuturesUnordered and `recv` keep their state).
        tokio::select! {
            biased;
            Some((origin, received)) = in_flight.next(), if !in_flight.is_empty() => {
                let origin: crate::model::Origin = origin;
                MessageCompleted { elapsed: Instant::elapsed(&received) }.emit(&metrics);
                let store = tracker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .complete(&origin.topic, origin.partition, origin.offset);
                if let Some(offset) = store {
                    match consumer.store_offset(&origin.topic, origin.partition, offset) {
                        Ok(()) => OffsetStored.emit(&metrics),
                        // The partition was revoked meanwhile; its new owner re-reads it.
                        Err(e) => tracing::debug!(error = %e, "offset not stored"),
                    }
                }
            }
            next = processed_rx.recv(), if input_open && in_flight.len() < max_in_flight => {
                match next {
                    Some(processed) => {
                        let SinkTargets { publisher, report_feed, remote } = targets.clone();
                        in_flight.push(async move {
                            let Processed { origin, received, outputs, remote: jobs } = processed;
                            let deliveries = outputs.into_iter().map(|o| publisher.deliver(o, &origin));
                            let published = futures::future::join_all(deliveries).await;
                            if let Some(feed) = &report_feed {
                                for payload in published.into_iter().flatten() {
                                    feed.offer(payload);
                                }
                            }
                            // Queued only now: a revision can never overtake its first record.
                            if let Some(remote) = &remote {
                                for job in jobs {
                                    remote.offer(job).await;
                                }
                            }
                            (origin, received)
                        });
                    }
                    None => input_open = false,
                }
            }
        }
    }
}

/// Checks every 10 s whether the latest assignment was empty, and if so whether the group
/// lost it (see `rejoin_if_sole_member_unassigned`).
async fn assignment_watchdog(
    consumer: Arc<EventConsumer>,
    settings: Settings,
    assigned_nothing: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        // Both branches are cancellation-safe.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if !assigned_nothing.load(Ordering::Relaxed) {
            continue;
        }
        let consumer = consumer.clone();
        let settings = settings.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::kafka::consumer::rejoin_if_sole_member_unassigned(&consumer, &settings)
        })
        .await;
    }
}

async fn housekeeping_loop(
    feeds: Arc<LocalFeeds>,
    mmdb: Option<Arc<Mmdb>>,
    talos: Option<Arc<Talos>>,
    dedup: DedupCache,
    reload_every: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut reload = tokio::time::interval(reload_every);
    let mut sample = tokio::time::interval(Duration::from_secs(5));
    reload.tick().await;
    loop {
        // Ticks and cancellation are all cancellation-safe.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = reload.tick() => {
                let feeds = feeds.clone();
                let (mmdb, talos) = (mmdb.clone(), talos.clone());
                let result = tokio::task::spawn_blocking(move || {
                    let changed = feeds.reload_if_changed();
                    // The mmdb and Talos files are reloaded when they change; on error the
                    // old data stays in use and the error is reported like a feed's.
                    let local = [
                        mmdb.map(|m| m.reload_if_changed().map_err(|e| e.to_string())),
                        talos.map(|t| t.reload_if_changed().map_err(|e| e.to_string())),
                    ];
                    (changed, feeds, local)
                })
                .await;
                let result = result.map(|(changed, feeds, local)| {
                    for outcome in local.into_iter().flatten() {
                        match outcome {
                            Ok(false) => {}
                            Ok(true) => FeedReloadFinished { error: None }.emit(&metrics),
                            Err(e) => FeedReloadFinished { error: Some(&e) }.emit(&metrics),
                        }
                    }
                    (changed, feeds)
                });
                if let Ok((changed, feeds)) = result {
                    match changed {
                        Ok(false) => {}
                        Ok(true) => {
                            FeedReloadFinished { error: None }.emit(&metrics);
                            emit_feeds_loaded(&feeds, &metrics);
                        }
                        Err(e) => FeedReloadFinished { error: Some(&e.to_string()) }.emit(&metrics),
                    }
                }
            }
            _ = sample.tick() => {
                CacheSampled { cache: "dedup", entries: dedup.entry_count() }.emit(&metrics);
            }
        }
    }
}
