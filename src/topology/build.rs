//! Building the running system from the settings: feeds, providers, the processor, the remote
//! stage and the Kafka clients, and the errors that stop a start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::producer::Producer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::server::{self, Health};
use crate::intel::LocalProvider;
use crate::kafka::consumer::{create_consumer, EventConsumer, PipelineConsumerContext};
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::producer::{create_producer, OutputProducer, ProducerStatsContext};
use crate::stages::process::RemoteQueues;

use crate::intel::feeds::{FeedError, FeedSpec, LocalFeeds};
use crate::intel::ConfiguredProviders;
use crate::kafka::consumer::ConsumerError;
use crate::kafka::producer::{OutputPublisher, ProducerError};
use crate::kafka::topics::{required_topics, topic_state, TopicState};
use crate::model::{Origin, Output};
use crate::remote::slot::{Patience, ProviderSlot, SlotLimits};
use crate::remote::{RemoteJob, RemoteStage, RevisionRules, RevisionSink};
use crate::report::scheduled::ReportFeed;
use crate::settings::state_topic;
use crate::settings::{Settings, SettingsError};
use crate::stages::dedup::DedupCache;
use crate::stages::process::Processor;
use crate::stages::score::ScoringModel;
use crate::state;
use crate::telemetry::events::FeedLoaded;
use crate::telemetry::Metrics;

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A setting that only fails when used (a secret file, a listen address, a provider).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A feed file could not be read.
    #[error("feeds: {0}")]
    Feeds(#[source] FeedError),
    /// The producer could not be created as configured.
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// The consumer could not be created as configured.
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    /// An output topic is missing.
    #[error("topic `{topic}` does not exist on {brokers}; create it (scripts/broker.sh does for the tests)")]
    MissingTopic {
        /// The topic.
        topic: String,
        /// The configured brokers.
        brokers: String,
    },
    /// The metrics listener could not bind.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// Address.
        addr: String,
        /// Error.
        #[source]
        error: std::io::Error,
    },
    /// Writing the output failed (`enrich`).
    #[error("stdout: {0}")]
    Stdout(#[source] std::io::Error),
    /// The state topic could not be read at start-up (s2-state).
    #[error("warm start: {0}")]
    State(String),
    /// A set-up step panicked (a bug).
    #[error("{what} panicked: {source}")]
    Panicked {
        /// The step.
        what: &'static str,
        /// The task's error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl AppError {
    /// Exit code: 2 for configuration problems, 1 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Settings(_) | AppError::Feeds(_) => 2,
            AppError::Panicked { what, .. } if *what != "the metadata request" => 2,
            _ => 1,
        }
    }

    /// Bounded label.
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::Settings(_) => "settings",
            AppError::Feeds(_) => "feeds",
            AppError::Producer(_) => "producer",
            AppError::Consumer(_) => "consumer",
            AppError::MissingTopic { .. } => "missing_topic",
            AppError::Listen { .. } => "listen",
            AppError::Stdout(_) => "stdout",
            AppError::State(_) => "state",
            AppError::Panicked { .. } => "panicked",
        }
    }
}

/// Loads the configured feeds (blocking file reads, off the runtime).
pub(crate) async fn load_feeds(
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Arc<LocalFeeds>, AppError> {
    let specs: Vec<FeedSpec> = settings
        .feed_paths()
        .into_iter()
        .map(|(name, path)| FeedSpec { name, path })
        .collect();
    let feeds = tokio::task::spawn_blocking(move || LocalFeeds::load(specs))
        .await
        .map_err(|source| AppError::Panicked {
            what: "feed loading",
            source,
        })?
        .map_err(AppError::Feeds)?;
    emit_feeds_loaded(&feeds, metrics);
    Ok(Arc::new(feeds))
}

/// Reports every feed's size and skipped lines.
pub(super) fn emit_feeds_loaded(feeds: &LocalFeeds, metrics: &Metrics) {
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

/// Builds the enabled providers (reads keys and local files: blocking I/O, off the runtime).
pub(crate) async fn build_providers(settings: &Settings) -> Result<ConfiguredProviders, AppError> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || ConfiguredProviders::build(&settings))
        .await
        .map_err(|source| AppError::Panicked {
            what: "provider set-up",
            source,
        })?
        .map_err(AppError::from)
}

/// The remote stage over the enabled remote providers, or `None` when there are none.
pub(crate) fn build_remote_stage(
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
    /// The address's state goes to the state topic too (s2-state).
    keeps_state: bool,
}

impl RevisionSink for PublishRevisions {
    fn publish(&self, output: Output, origin: Origin) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // A revision is made long after its input message: no message time to carry.
            if let Some(payload) = self.publisher.deliver(output, &origin, None).await {
                if let Some(feed) = &self.report_feed {
                    feed.offer(payload);
                }
            }
        })
    }

    fn keeps_state(&self) -> bool {
        self.keeps_state
    }

    fn state(&self, output: Output, origin: Origin) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.publisher.deliver(output, &origin, None).await;
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
    let providers = ConfiguredProviders::build(settings)?;
    build_processor_with(settings, feeds, &providers, metrics)
}

/// Assembles the processing stages from the settings and the built providers.
pub(crate) fn build_processor_with(
    settings: &Settings,
    feeds: Arc<LocalFeeds>,
    providers: &ConfiguredProviders,
    metrics: Arc<Metrics>,
) -> Result<Processor, AppError> {
    Ok(Processor::from_settings(
        settings, feeds, providers, metrics,
    )?)
}

/// Waits until the brokers answer, then checks that the output and DLQ topics exist.
/// Returns `Ok(false)` when shutdown was requested while waiting.
pub(super) async fn wait_for_topics(
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
        .map_err(|source| AppError::Panicked {
            what: "the metadata request",
            source,
        })?;
        match metadata {
            Ok(metadata) => {
                let state = state_topic(&settings.kafka.output_topic);
                let mut required = vec![&settings.kafka.output_topic, &settings.kafka.dlq_topic];
                if settings.scale.changelog_on() {
                    required.push(&state);
                }
                match required_topics(&metadata, required) {
                    Err(topic) => {
                        return Err(AppError::MissingTopic {
                            topic: topic.to_owned(),
                            brokers: settings.kafka.brokers.clone(),
                        })
                    }
                    Ok(true) => {
                        for topic in &settings.kafka.input_topics {
                            if topic_state(&metadata, topic) != TopicState::Ready {
                                warn!(topic = %topic, "input topic not available yet; waiting for it");
                            }
                        }
                        return Ok(true);
                    }
                    Ok(false) => {}
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

/// Everything the running system is made of, built and checked before any task starts.
pub(super) struct Parts {
    pub(super) producer: OutputProducer,
    pub(super) consumer: Arc<EventConsumer>,
    pub(super) tracker: Arc<Mutex<OffsetTracker>>,
    pub(super) assigned_nothing: Arc<AtomicBool>,
    pub(super) server: tokio::task::JoinHandle<std::io::Result<()>>,
    pub(super) processor: Processor,
    pub(super) dedup: DedupCache,
    pub(super) publisher: OutputPublisher,
    pub(super) remote: Option<Arc<RemoteStage>>,
    pub(super) reports: Option<(ReportFeed, mpsc::Receiver<Vec<u8>>)>,
    pub(super) feeds: Arc<LocalFeeds>,
    pub(super) local: Vec<Arc<dyn LocalProvider>>,
    /// Lookups a warm start found pending, queued once the dispatchers run (s2-state).
    pub(super) requeue: Vec<RemoteJob>,
}

/// Builds the running system: feeds, producer, the metrics server (serving `/healthz`, and
/// `/readyz` naming what is missing, while the brokers are waited for), the output topics'
/// check, consumer, providers, processor and remote stage. `Ok(None)` when shutdown was
/// requested while waiting for the brokers. Unless it returns `Ok(Some)`, the server is
/// stopped before it returns.
pub(super) async fn assemble(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    registry: prometheus::Registry,
    stop_server: &CancellationToken,
    shutdown: &CancellationToken,
) -> Result<Option<Parts>, AppError> {
    let feeds = load_feeds(settings, metrics).await?;
    let health = Health::default();
    let producer = create_producer(
        settings,
        ProducerStatsContext::new(
            metrics.clone(),
            health.producer_connected.clone(),
            health.producer_fatal.clone(),
        ),
    )?;
    let listen = settings.listen_addr()?;
    let listener = server::bind(listen)
        .await
        .map_err(|error| AppError::Listen {
            addr: listen.to_string(),
            error,
        })?;
    let server = tokio::spawn(server::serve(
        listener,
        registry,
        health.clone(),
        stop_server.clone(),
    ));
    // On an early return the server's handle is dropped (the task detached) and stopped here.
    let built =
        assemble_after_listening(settings, metrics, feeds, health, producer, server, shutdown)
            .await;
    if !matches!(built, Ok(Some(_))) {
        stop_server.cancel();
    }
    built
}

/// The rest of [`assemble`], once the metrics server runs.
async fn assemble_after_listening(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    feeds: Arc<LocalFeeds>,
    health: Health,
    producer: OutputProducer,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: &CancellationToken,
) -> Result<Option<Parts>, AppError> {
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
    if !wait_for_topics(&producer, settings, shutdown).await? {
        return Ok(None);
    }
    health.producer_connected.store(true, Ordering::Relaxed);
    // s2-state: the state topic is read before the consumer joins (`/readyz` waits for it).
    let warm = if settings.scale.changelog_on() {
        match state::warm_start(settings, None, shutdown).await {
            Ok(Some(warm)) => Some(warm),
            Ok(None) => return Ok(None),
            Err(error) => return Err(AppError::State(error.to_string())),
        }
    } else {
        None
    };
    let consumer_settings = settings.clone();
    let context = PipelineConsumerContext::new(
        metrics.clone(),
        tracker.clone(),
        health.consumer_assigned.clone(),
    );
    let assigned_nothing = context.assigned_nothing();
    let consumer =
        tokio::task::spawn_blocking(move || create_consumer(&consumer_settings, context))
            .await
            .map_err(|source| AppError::Panicked {
                what: "consumer creation",
                source,
            })??;
    let providers = build_providers(settings).await?;
    let processor = build_processor_with(settings, feeds.clone(), &providers, metrics.clone())?;
    let publisher = OutputPublisher::new(
        producer.clone(),
        settings,
        metrics.clone(),
        health.producer_fatal.clone(),
    );
    info!(
        brokers = %settings.kafka.brokers,
        topics = ?settings.kafka.input_topics,
        output = %settings.kafka.output_topic,
        dlq = %settings.kafka.dlq_topic,
        remote_providers = ?providers.remote.iter().map(|(p, _)| p.name()).collect::<Vec<_>>(),
        local_providers = ?providers.local.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "threatsift running"
    );
    // Scheduled reports (off when report.interval is 0) are fed by the sink.
    let reports = (!settings.report.interval.is_zero()).then(|| ReportFeed::new(metrics.clone()));
    // Remote providers (none enabled: no stage): revisions go out through the same publisher.
    let revisions = Arc::new(PublishRevisions {
        publisher: publisher.clone(),
        report_feed: reports.as_ref().map(|(feed, _)| feed.clone()),
        keeps_state: settings.scale.changelog_on(),
    });
    let remote = build_remote_stage(settings, &providers, revisions, metrics.clone())?;
    let requeue = match warm {
        Some(warm) => state::restore(warm, processor.dedup(), remote.as_ref(), metrics).await,
        None => Vec::new(),
    };
    let queues = remote.clone().map(|r| r as Arc<dyn RemoteQueues>);
    Ok(Some(Parts {
        producer,
        consumer: Arc::new(consumer),
        tracker,
        assigned_nothing,
        server,
        dedup: processor.dedup().clone(),
        processor: processor.with_remote_queues(queues),
        publisher,
        remote,
        reports,
        feeds,
        local: providers.local.clone(),
        requeue,
    }))
}
