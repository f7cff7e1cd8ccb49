//! End-to-end throughput on the real broker (design §9): the daemon's pipeline (`app::run`)
//! against a bare rdkafka consumer draining the same topic, in events per second.
//!
//! Needs the broker of `scripts/broker.sh` (`THREATSIFT_TEST_BROKERS`). `cargo bench --bench
//! e2e` uses 200,000 events; as a test it uses 2,000 and only checks that both drain. Rates are
//! measured from the first message to the last, so the consumer-group join is not counted.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use threatsift::test_support::pipeline::spawn_pipeline;
use threatsift::test_support::{brokers, unique};
use threatsift::Settings;

async fn prepare(brokers: &str, events: usize) -> (String, String, String) {
    let (input, output, dlq) = (unique("e2e-in"), unique("e2e-out"), unique("e2e-dlq"));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let topics = [
        NewTopic::new(&input, 4, TopicReplication::Fixed(1)),
        NewTopic::new(&output, 4, TopicReplication::Fixed(1)),
        NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
    ];
    for result in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create")
    {
        result.expect("topic created");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");
    let lines: Vec<&str> = threatsift::SAMPLE_EVENTS.lines().collect();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..events {
        let line = lines[i % lines.len()];
        pending.push(producer.send(
            FutureRecord::<(), str>::to(&input).payload(line),
            Timeout::After(Duration::from_secs(60)),
        ));
        if pending.len() == 10_000 {
            for r in futures::future::join_all(pending.drain(..)).await {
                r.map_err(|(e, _)| e).expect("produce");
            }
        }
    }
    for r in futures::future::join_all(pending).await {
        r.map_err(|(e, _)| e).expect("produce");
    }
    (input, output, dlq)
}

fn drain_bare(brokers: &str, topic: &str, events: usize) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("e2e-bare"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut seen = 0;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < events && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            seen += 1;
        }
    }
    assert_eq!(seen, events, "bare consumer drained the topic");
    events as f64 / first.map_or(1.0, |f| f.elapsed().as_secs_f64())
}

async fn drain_daemon(brokers: &str, topics: &(String, String, String), events: usize) -> f64 {
    let dir = std::env::temp_dir().join(unique("e2e-feed"));
    std::fs::create_dir_all(&dir).expect("dir");
    let feed = dir.join("feed.txt");
    std::fs::write(&feed, threatsift::SAMPLE_BLOCKLIST).expect("feed");
    let settings = Settings::from_toml_overrides(&format!(
        r#"
        [kafka]
        brokers = "{brokers}"
        group_id = "{group}"
        input_topics = ["{input}"]
        output_topic = "{output}"
        dlq_topic = "{dlq}"
        statistics_interval = "0s"
        [filter]
        allow_documentation_ranges = true
        [server]
        listen = "127.0.0.1:0"
        [[feeds]]
        name = "sample"
        path = "{feed}"
        weight = 70
        "#,
        group = unique("e2e-daemon"),
        input = topics.0,
        output = topics.1,
        dlq = topics.2,
        feed = feed.display(),
    ))
    .expect("settings");
    let (metrics, shutdown, run) = spawn_pipeline(settings);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut first = None;
    while (metrics.messages_completed.get() as usize) < events && Instant::now() < deadline {
        if metrics.messages_completed.get() > 0 {
            first.get_or_insert_with(Instant::now);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = first.map_or(1.0, |f| f.elapsed().as_secs_f64());
    shutdown.cancel();
    let summary = run.await.expect("join").expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        metrics.messages_completed.get() as usize,
        events,
        "daemon drained the topic"
    );
    assert!(summary.drained);
    events as f64 / elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let brokers = brokers();
    let full = std::env::args().any(|a| a == "--bench");
    let events = if full { 200_000 } else { 2_000 };
    let topics = prepare(&brokers, events).await;
    let bare = {
        let (brokers, input) = (brokers.clone(), topics.0.clone());
        tokio::task::spawn_blocking(move || drain_bare(&brokers, &input, events))
            .await
            .expect("bare")
    };
    let daemon = drain_daemon(&brokers, &topics, events).await;
    println!(
        "e2e/{events} demo events, 4 partitions: bare consumer {bare:.0} events/s, daemon {daemon:.0} events/s ({:.0}% of bare)",
        100.0 * daemon / bare
    );
}
