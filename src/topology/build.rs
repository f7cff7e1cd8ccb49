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
use crate::kafka::consumer::{
    create_consumer, create_consumer_of, EventConsumer, PipelineConsumerContext,
};
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
use crate::remote::{RemoteJob, RemoteStage, RevisionRules, RevisionSink};
use crate::report::scheduled::ReportFeed;
use crate::settings::state_topic;
use crate::settings::{Settings, SettingsError};
use crate::stages::dedup::DedupCache;
use crate::stages::filter::{AllowlistError, AllowlistFile};
use crate::stages::local::LocalIntel;
use crate::stages::process::Processor;
use crate::stages::published::PublishedIndex;
use crate::stages::score::ScoringModel;
use crate::state;
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
    /// A topic of scaled mode is not as the mode needs it (s1-scaled).
    #[error("topic `{topic}`: {problem} (scaled mode; README, \"Running more than one daemon\")")]
    ScaleTopic {
        /// The topic.
        topic: String,
        /// What is wrong.
        problem: String,
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
            AppError::Settings(_) | AppError::Feeds(_) | AppError::ScaleTopic { .. } => 2,
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
            AppError::ScaleTopic { .. } => "scale_topic",
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
    /// The address's state goes to the state topic too (s2-state).
    keeps_state: bool,
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
                // Scaled mode checks the sightings and state topics together (named in that
                // order), in `check_scale_topics`.
                if settings.scale.changelog_on() && !settings.scale.scaled() {
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
    /// Withdrawals and feed-reload re-evaluation (ef-withdraw).
    pub(super) withdrawals: Arc<Withdrawals>,
    /// The allow-list file the processor's filter reads, when one is configured.
    pub(super) allowlist: Option<Arc<AllowlistFile>>,
    /// Lookups a warm start found pending, queued once the dispatchers run (s2-state).
    pub(super) requeue: Vec<RemoteJob>,
    /// Scaled mode: the owner side's consumer.
    pub(super) owner: Option<OwnerParts>,
}

/// The owner side of scaled mode: its consumer (group `<group_id>.owners`, the sightings
/// topic) and offset tracker.
pub(super) struct OwnerParts {
    pub(super) consumer: Arc<EventConsumer>,
    pub(super) tracker: Arc<Mutex<OffsetTracker>>,
    pub(super) hooks: Arc<super::owner::OwnerHooks>,
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
    let scale_partitions = if settings.scale.scaled() {
        match check_scale_topics(&producer, settings, shutdown).await? {
            Some(partitions) => Some(partitions),
            None => return Ok(None),
        }
    } else {
        None
    };
    health.producer_connected.store(true, Ordering::Relaxed);
    // s2-state: the state topic is read before the consumer joins (`/readyz` waits for it).
    // Scaled mode reads the state partitions it is assigned instead, on each assignment
    // (`topology/owner.rs`).
    let warm = if settings.scale.changelog_on() && !settings.scale.scaled() {
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
        keeps_state: settings.scale.changelog_on(),
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
    let requeue = match warm {
        Some(warm) => {
            let warm = warm.feeding(published.clone());
            state::restore(warm, processor.dedup(), remote.as_ref(), metrics).await
        }
        None => Vec::new(),
    };
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
    let owner_warm = super::owner::WarmStart {
        settings: settings.clone(),
        stop: shutdown.clone(),
        runtime: tokio::runtime::Handle::current(),
        published: published.clone(),
    };
    start_blocklist(settings, published, withdraw_metrics, excluded, stop_server).await?;
    let owner = match scale_partitions {
        Some(partitions) => Some(
            create_owner(
                settings,
                metrics,
                processor.dedup().clone(),
                remote.clone(),
                partitions,
                owner_warm,
            )
            .await?,
        ),
        None => None,
    };
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
        owner,
        requeue,
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

/// The owner side's consumer, in group `<group_id>.owners` on the sightings topic, with the
/// hooks that hand addresses over at each rebalance (`topology/owner.rs`).
async fn create_owner(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    dedup: DedupCache,
    remote: Option<Arc<RemoteStage>>,
    partitions: usize,
    warm: super::owner::WarmStart,
) -> Result<OwnerParts, AppError> {
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
    let hooks = Arc::new(
        super::owner::OwnerHooks::new(dedup, remote, partitions, metrics.clone())
            .with_warm_start(warm),
    );
    let context = PipelineConsumerContext::new(
        metrics.clone(),
        tracker.clone(),
        Arc::new(AtomicBool::new(false)),
    )
    .with_hooks(hooks.clone());
    let consumer_settings = settings.clone();
    let consumer = tokio::task::spawn_blocking(move || {
        create_consumer_of(
            &consumer_settings,
            &consumer_settings.owners_group(),
            &[consumer_settings.sightings_topic()],
            context,
        )
    })
    .await
    .map_err(|source| AppError::Panicked {
        what: "owner consumer creation",
        source,
    })??;
    info!(
        group = %settings.owners_group(),
        topic = %settings.sightings_topic(),
        partitions,
        "scaled mode: owner side consuming sightings"
    );
    Ok(OwnerParts {
        consumer: Arc::new(consumer),
        tracker,
        hooks,
    })
}

// s1-scaled: the start-up checks of scaled mode.
/// Scaled mode: the sightings and state topics exist with equal partition counts, and the state
/// topic is compacted. Returns the partition count. A broker that cannot answer
/// DescribeConfigs (or leaves `cleanup.policy` out) gets a warning, not a failure: compaction
/// is then the operator's to check.
pub(super) async fn check_scale_topics(
    producer: &OutputProducer,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Result<Option<usize>, AppError> {
    use crate::kafka::topics::{is_compacted, scale_topics, ScaleTopicProblem};
    let (sightings, state) = (settings.sightings_topic(), settings.state_topic());
    let partitions = loop {
        let client = producer.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            client.client().fetch_metadata(None, Duration::from_secs(5))
        })
        .await
        .map_err(|source| AppError::Panicked {
            what: "the metadata request",
            source,
        })?;
        if let Ok(metadata) = metadata {
            match scale_topics(&metadata, &sightings, &state) {
                Ok(Some(partitions)) => break partitions,
                Ok(None) => {}
                Err((topic, ScaleTopicProblem::Missing)) => {
                    return Err(AppError::MissingTopic {
                        topic,
                        brokers: settings.kafka.brokers.clone(),
                    })
                }
                Err((
                    topic,
                    ScaleTopicProblem::Unequal {
                        sightings: s,
                        state: t,
                    },
                )) => {
                    return Err(AppError::ScaleTopic {
                        topic,
                        problem: format!(
                            "has {t} partitions and `{sightings}` has {s}; they must be equal \
                             (an address's state lives on the partition of its sightings)"
                        ),
                    })
                }
            }
        }
        // Cancellation-safe: sleeping holds no state.
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    match state_cleanup_policy(settings, &state).await {
        Ok(Some(policy)) if is_compacted(&policy) => {}
        Ok(Some(policy)) => {
            return Err(AppError::ScaleTopic {
                topic: state,
                problem: format!(
                    "cleanup.policy is `{policy}`; it must contain `compact` (the latest state \
                     of every address must be kept)"
                ),
            })
        }
        Ok(None) => warn!(
            topic = %state,
            "the broker did not report cleanup.policy of the state topic; make sure it is compact"
        ),
        Err(error) => warn!(
            topic = %state,
            %error,
            "the broker could not describe the state topic's configuration; make sure its \
             cleanup.policy is compact"
        ),
    }
    Ok(Some(partitions))
}

/// `cleanup.policy` of `topic` through DescribeConfigs; `Ok(None)` when the answer leaves it
/// out.
async fn state_cleanup_policy(settings: &Settings, topic: &str) -> Result<Option<String>, String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let config = crate::kafka::base_client_config(settings).map_err(|e| e.to_string())?;
    let admin: AdminClient<DefaultClientContext> = config.create().map_err(|e| e.to_string())?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let answers = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
        .map_err(|e| e.to_string())?;
    let resource = answers
        .into_iter()
        .next()
        .ok_or("an empty answer")?
        .map_err(|code| code.to_string())?;
    Ok(resource
        .get("cleanup.policy")
        .and_then(|entry| entry.value.clone()))
}
