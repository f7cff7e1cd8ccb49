//! `threatsift demo`: the real pipeline (the same `app::run` as the daemon) against librdkafka's
//! in-process mock cluster, fed with the bundled sample events and blocklist. No network, no
//! setup; it prints the threat records, the report and a summary and exits.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::model::{ThreatRecord, Verdict};
use crate::settings::Settings;
use crate::telemetry::Metrics;

/// The bundled sample events, one per line.
pub const SAMPLE_EVENTS: &str = include_str!("../../demo/events.jsonl");
/// The bundled sample blocklist.
pub const SAMPLE_BLOCKLIST: &str = include_str!("../../config/feeds/sample-blocklist.txt");

const TOPICS: [(&str, i32); 4] = [
    ("firewall", 2),
    ("proxy", 1),
    ("threats", 2),
    ("threatsift-dlq", 1),
];

/// What the demo did.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// Sample events produced.
    pub events: usize,
    /// Threat records read back from the output topic.
    pub records: Vec<ThreatRecord>,
    /// DLQ entries read back.
    pub dlq_entries: usize,
    /// Addresses dropped as non-public.
    pub filtered: u64,
    /// Repeat sightings.
    pub dedup_hits: u64,
    /// Wall time of the pipeline run.
    pub elapsed: Duration,
}

/// Runs the demo, writing records and the summary to `out`.
pub async fn run_demo(out: &mut impl Write) -> anyhow::Result<DemoSummary> {
    let cluster = MockCluster::new(1).context("starting the in-process kafka mock cluster")?;
    for (topic, partitions) in TOPICS {
        cluster
            .create_topic(topic, partitions, 1)
            .context("creating demo topics")?;
    }
    let brokers = cluster.bootstrap_servers();
    let feed_path = std::env::temp_dir().join(format!(
        "threatsift-demo-blocklist-{}.txt",
        std::process::id()
    ));
    std::fs::write(&feed_path, SAMPLE_BLOCKLIST)
        .with_context(|| format!("writing {}", feed_path.display()))?;
    let result = run_with_cluster(&brokers, &feed_path, out).await;
    let _ = std::fs::remove_file(&feed_path);
    drop(cluster);
    result
}

async fn run_with_cluster(
    brokers: &str,
    feed_path: &std::path::Path,
    out: &mut impl Write,
) -> anyhow::Result<DemoSummary> {
    let overrides = format!(
        r#"
        [kafka]
        brokers = "{brokers}"
        group_id = "threatsift-demo"
        statistics_interval = "0s"
        # The samples are produced before the pipeline joins.
        start_from = "earliest"
        [filter]
        allow_documentation_ranges = true
        [server]
        listen = "127.0.0.1:0"
        [shutdown]
        drain_timeout = "10s"
        [[feeds]]
        name = "sample-blocklist"
        path = "{}"
        weight = 70
        "#,
        feed_path.display().to_string().replace('\\', "\\\\")
    );
    let settings = Settings::from_toml_overrides(&overrides)?;
    let events = produce_samples(brokers).await?;

    let registry = prometheus::Registry::new();
    let metrics = Arc::new(Metrics::new(&registry)?);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let pipeline = crate::topology::run(settings, registry, metrics.clone(), shutdown.clone());
    tokio::pin!(pipeline);
    let deadline = started + Duration::from_secs(60);
    // The pipeline runs until every sample message is finished (or a minute passes), then
    // drains; it may also end on its own (an error).
    let summary = loop {
        tokio::select! {
            summary = &mut pipeline => break summary?,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if metrics.messages_completed.get() >= events as u64 || Instant::now() > deadline {
                    shutdown.cancel();
                }
            }
        }
    };
    let elapsed = started.elapsed();
    anyhow::ensure!(
        metrics.messages_completed.get() >= events as u64,
        "the pipeline finished {} of {events} messages",
        metrics.messages_completed.get()
    );
    anyhow::ensure!(summary.drained, "the pipeline did not drain");

    let brokers = brokers.to_owned();
    let (mut records, dlq_entries) =
        crate::topology::blocking("reading the demo's output", move || read_outputs(&brokers))
            .await??;
    records.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.ip.cmp(&b.ip)));
    for record in &records {
        writeln!(out, "{}", serde_json::to_string(record)?)?;
    }
    // The report analysts read, from the same records (`threatsift report` does the same).
    let report = crate::report::build::build_report(records.clone(), None);
    writeln!(out)?;
    write!(
        out,
        "{}",
        crate::report::render_report(&report, crate::report::ReportFormat::Markdown)
    )?;
    let demo = DemoSummary {
        events,
        records,
        dlq_entries,
        filtered: sum_counter(&metrics.ips_filtered),
        dedup_hits: metrics.dedup_hits.get(),
        elapsed,
    };
    write_summary(out, &demo, &metrics)?;
    Ok(demo)
}

fn sum_counter(counter: &prometheus::IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    counter
        .collect()
        .iter()
        .flat_map(|family| {
            family
                .get_metric()
                .iter()
                .map(|m| m.get_counter().get_value() as u64)
        })
        .sum()
}

fn write_summary(
    out: &mut impl Write,
    demo: &DemoSummary,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let count = |v: Verdict| demo.records.iter().filter(|r| r.verdict == v).count();
    writeln!(out)?;
    writeln!(out, "== threatsift demo summary ==")?;
    writeln!(
        out,
        "events: {} sample lines through the in-process Kafka cluster in {:.2}s",
        demo.events,
        demo.elapsed.as_secs_f64()
    )?;
    writeln!(
        out,
        "addresses: {} first sightings enriched, {} repeat sightings, {} non-public dropped",
        metrics.dedup_misses.get(),
        demo.dedup_hits,
        demo.filtered
    )?;
    writeln!(
        out,
        "threat records: {} published ({} malicious, {} suspicious); {} below the publish threshold",
        demo.records.len(),
        count(Verdict::Malicious),
        count(Verdict::Suspicious),
        sum_counter(&metrics.records_withheld)
    )?;
    writeln!(
        out,
        "dead-letter queue: {} unparseable lines kept with their origin",
        demo.dlq_entries
    )?;
    for record in demo.records.iter().take(5) {
        writeln!(
            out,
            "  {:<22} {:<10} score {:>3}  sightings {:>3}  {}",
            record.ip,
            record.verdict.label(),
            record.score,
            record.sightings,
            record.reasons.first().map_or("", |r| r.detail.as_str())
        )?;
    }
    Ok(())
}

async fn produce_samples(brokers: &str) -> anyhow::Result<usize> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the demo producer")?;
    let mut sent = 0;
    for line in SAMPLE_EVENTS.lines() {
        let topic = if line.contains("\"dataset\":\"proxy\"") {
            "proxy"
        } else {
            "firewall"
        };
        producer
            .send(
                FutureRecord::<(), str>::to(topic).payload(line),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing sample events: {e}"))?;
        sent += 1;
    }
    Ok(sent)
}

/// Reads every record and DLQ entry back from the mock cluster.
fn read_outputs(brokers: &str) -> anyhow::Result<(Vec<ThreatRecord>, usize)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "threatsift-demo-reader")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the demo reader")?;
    let mut assignment = TopicPartitionList::new();
    let mut partitions = 0;
    for (topic, count) in [TOPICS[2], TOPICS[3]] {
        for p in 0..count {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
            partitions += 1;
        }
    }
    consumer.assign(&assignment)?;
    let mut records = Vec::new();
    let mut dlq = 0;
    let mut at_end = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while at_end < partitions && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let payload = message.payload().unwrap_or_default();
                if message.topic() == "threats" {
                    records.push(serde_json::from_slice(payload).context("reading a record")?);
                } else {
                    dlq += 1;
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok((records, dlq))
}

/// `threatsift demo`: the whole pipeline on the in-process mock cluster; exit 1 on failure.
pub fn demo_command() -> ExitCode {
    let stdout = std::io::stdout();
    match crate::topology::block_on(run_demo(&mut stdout.lock())) {
        Ok(Ok(_)) => ExitCode::SUCCESS,
        Ok(Err(e)) => super::fail(&e),
        Err(e) => super::fail(&e),
    }
}
