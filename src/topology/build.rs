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

use super::blocklist::BlocklistState;
use super::withdraw::{WithdrawalParts, Withdrawals};
use crate::intel::feeds::{FeedError, FeedSpec, LocalFeeds};
use crate::intel::ConfiguredProviders;
use crate::kafka::consumer::ConsumerError;
use crate::kafka::producer::{OutputPublisher, ProducerError};
use crate::kafka::topics::{required_topics, topic_state, TopicState};
use crate::model::{Origin, Output};
use crate::remote::slot::{Patience, ProviderSlot, SlotLimits};
use crate::remote::{RemoteStage, RevisionRules, RevisionSink};
use crate::report::scheduled::ReportFeed;
use crate::settings::{Settings, SettingsError};
use crate::stages::dedup::DedupCache;
use crate::stages::filter::{AllowlistError, AllowlistFile};
use crate::stages::local::LocalIntel;
use crate::stages::process::Processor;
use crate::stages::published::PublishedIndex;
use crate::stages::score::ScoringModel;
use crate::telemetry::events::{AllowlistLoaded, FeedLoaded, WithdrawMetrics};
use crate::telemetry::Metrics;
use std::time::SystemTime;

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

/// Fails at once, before the brokers are waited for, when the allow-list file cannot be opened
/// (the processor reads it later): a configuration problem, exit 2.
fn check_allowlist_readable(settings: &Settings) -> Result<(), AppError> {
    let Some(path) = settings.allowlist.file() else {
        return Ok(());
    };
    let readable = std::fs::File::open(path).and_then(|f| {
        if f.metadata()?.is_dir() {
            Err(std::io::Error::other("is a directory"))
        } else {
            Ok(())
        }
    });
    readable.map_err(|error| {
        AppError::Settings(SettingsError::Unusable {
            key: "allowlist.path".to_owned(),
            source: Box::new(AllowlistError {
                path: path.to_path_buf(),
                error,
            }),
        })
    })
}

/// Reports the allow-list's size and skipped lines.
pub(super) fn emit_allowlist_loaded(file: &AllowlistFile, metrics: &Metrics) {
    let list = file.current();
    let now = std::time::SystemTime::now();
    AllowlistLoaded {
        path: file.path(),
        entries: list.entries().len(),
        active: list.active_count(now),
        skipped_lines: list.skipped_count(),
        skipped: list.skipped(),
    }
    .emit(metrics);
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
    feeds: Option<Arc<LocalFeeds>>,
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
            publication: Arc::new(crate::publish::Publication::from_settings(settings)),
            feeds,
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
    /// The index of published records (withdrawals, the blocklist).
    published: Option<PublishedIndex>,
}

impl RevisionSink for PublishRevisions {
    fn publish(&self, output: Output, origin: Origin) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // A revision is made long after its input message: no message time to carry.
            if let Some(payload) = self.publisher.deliver(output, &origin, None).await {
                if let Some(index) = &self.published {
                    index.record_delivered(&payload, SystemTime::now());
                }
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
                let required = [&settings.kafka.output_topic, &settings.kafka.dlq_topic];
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
    /// Withdrawals and feed-reload re-evaluation (ef-withdraw).
    pub(super) withdrawals: Arc<Withdrawals>,
    /// The allow-list file the processor's filter reads, when one is configured.
    pub(super) allowlist: Option<Arc<AllowlistFile>>,
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
    check_allowlist_readable(settings)?;
    let health = Health::default();
    let producer = create_producer(
        settings,
        ProducerStatsContext::new(
            metrics.clone(),
            health.producer_connected.clone(),
            health.producer_fatal.clone(),
        ),
    )?;
    let withdraw_metrics = WithdrawMetrics::new(&registry).map_err(|e| {
        SettingsError::invalid(
            "metrics",
            format!("cannot register the withdrawal metrics: {e}"),
        )
    })?;
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
    let built = assemble_after_listening(
        settings,
        metrics,
        feeds,
        health,
        producer,
        server,
        withdraw_metrics,
        stop_server,
        shutdown,
    )
    .await;
    if !matches!(built, Ok(Some(_))) {
        stop_server.cancel();
    }
    built
}

/// The rest of [`assemble`], once the metrics server runs.
#[allow(clippy::too_many_arguments)] // one more: the withdrawal metrics and the server's stop
async fn assemble_after_listening(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    feeds: Arc<LocalFeeds>,
    health: Health,
    producer: OutputProducer,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    withdraw_metrics: WithdrawMetrics,
    stop_server: &CancellationToken,
    shutdown: &CancellationToken,
) -> Result<Option<Parts>, AppError> {
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
    if !wait_for_topics(&producer, settings, shutdown).await? {
        return Ok(None);
    }
    health.producer_connected.store(true, Ordering::Relaxed);
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
    let allowlist = processor.filter().allowlist().cloned();
    if let Some(file) = &allowlist {
        emit_allowlist_loaded(file, metrics);
    }
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
    let published = PublishedIndex::new(
        settings.published.max_entries,
        settings.published.max_bytes,
        settings.dedup.ttl,
    );
    let revisions = Arc::new(PublishRevisions {
        publisher: publisher.clone(),
        report_feed: reports.as_ref().map(|(feed, _)| feed.clone()),
        published: Some(published.clone()),
    });
    let remote = build_remote_stage(
        settings,
        &providers,
        Some(feeds.clone()),
        revisions.clone(),
        metrics.clone(),
    )?;
    if let (Some(remote), Some(file)) = (&remote, &allowlist) {
        remote.set_allowlist(file.clone());
    }
    let queues = remote.clone().map(|r| r as Arc<dyn RemoteQueues>);
    let withdrawals = Arc::new(Withdrawals::new(
        published.clone(),
        processor.dedup().clone(),
        WithdrawalParts {
            sink: revisions,
            scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
            min_verdict: settings.publish.min_verdict,
            local: LocalIntel::new(
                feeds.clone(),
                providers.local.clone(),
                providers.entries.clone(),
            ),
            remote: remote.clone(),
            metrics: metrics.clone(),
            counters: withdraw_metrics.clone(),
            tombstones: settings.publish.tombstones,
            publication: Arc::new(crate::publish::Publication::from_settings(settings)),
        },
    ));
    // Allow-listed addresses never appear on the blocklist, also before their withdrawal is
    // delivered.
    let excluded = allowlist.clone().map(|file| {
        Arc::new(move |ip: std::net::IpAddr| {
            file.current().matching(ip, SystemTime::now()).is_some()
        }) as super::blocklist::Exclusion
    });
    start_blocklist(settings, published, withdraw_metrics, excluded, stop_server).await?;
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
        withdrawals,
        allowlist,
    }))
}

/// Starts the blocklist endpoint when `blocklist.listen` is set; it stops with the metrics
/// server.
async fn start_blocklist(
    settings: &Settings,
    index: PublishedIndex,
    metrics: WithdrawMetrics,
    excluded: Option<super::blocklist::Exclusion>,
    stop: &CancellationToken,
) -> Result<(), AppError> {
    let Some(addr) = settings.blocklist.listen_addr()? else {
        return Ok(());
    };
    let token = settings.blocklist.resolved_token()?;
    let listener = server::bind(addr).await.map_err(|error| AppError::Listen {
        addr: addr.to_string(),
        error,
    })?;
    info!(listen = %addr, token = token.is_some(), "blocklist endpoint listening");
    let state = BlocklistState {
        index,
        token,
        min_verdict: settings.blocklist.min_verdict,
        max_entries: settings.blocklist.max_entries,
        metrics,
        excluded,
    };
    tokio::spawn(super::blocklist::serve(listener, state, stop.clone()));
    Ok(())
}
