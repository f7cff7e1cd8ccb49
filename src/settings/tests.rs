//! Unit tests of loading, layering, validation and redaction.

use std::time::Duration;

use super::*;
use crate::model::Verdict;

fn env_from(vars: &[(&str, &str)]) -> Environment {
    let map = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Environment::with_prefix(ENV_PREFIX).source(Some(map))
}

#[test]
fn defaults_load_and_validate() {
    let settings = Settings::load_with_env(None, env_from(&[])).expect("defaults load");
    assert_eq!(settings.kafka.brokers, "127.0.0.1:9092");
    assert_eq!(settings.kafka.input_topics, vec!["firewall", "proxy"]);
    assert_eq!(settings.dedup.ttl, Duration::from_secs(24 * 3600));
    assert_eq!(settings.publish.min_verdict, Verdict::Suspicious);
    assert_eq!(settings.feeds.len(), 1);
}

#[test]
fn environment_overrides_nested_keys_and_lists() {
    let settings = Settings::load_with_env(
        None,
        env_from(&[
            ("THREATSIFT__KAFKA__BROKERS", "10.1.1.1:9093"),
            ("THREATSIFT__KAFKA__INPUT_TOPICS", "a,b,c"),
            ("THREATSIFT__DEDUP__MAX_ENTRIES", "42"),
            ("THREATSIFT__FILTER__ALLOW_DOCUMENTATION_RANGES", "true"),
        ]),
    )
    .expect("overrides load");
    assert_eq!(settings.kafka.brokers, "10.1.1.1:9093");
    assert_eq!(settings.kafka.input_topics, vec!["a", "b", "c"]);
    assert_eq!(settings.dedup.max_entries, 42);
    assert!(settings.filter.allow_documentation_ranges);
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let err = Settings::from_toml_overrides("[kafka]\nbrokerz = \"x\"\n").unwrap_err();
    assert!(err.to_string().contains("brokerz"), "{err}");
    let err =
        Settings::load_with_env(None, env_from(&[("THREATSIFT__DEDUP__TLL", "1h")])).unwrap_err();
    assert!(err.to_string().contains("tll"), "{err}");
}

#[test]
fn invalid_values_name_the_key() {
    let cases = [
        ("[kafka]\ninput_topics = []\n", "kafka.input_topics"),
        (
            "[kafka]\ninput_topics = [\"threats\"]\n",
            "kafka.input_topics[0]",
        ),
        (
            "[filter]\nignore_cidrs = [\"10.0.0.0/8\", \"nope\"]\n",
            "filter.ignore_cidrs[1]",
        ),
        ("[server]\nlisten = \"localhost\"\n", "server.listen"),
        ("[dedup]\nmax_entries = 0\n", "dedup.max_entries"),
        (
            "[kafka]\nsecurity_protocol = \"sasl_ssl\"\n",
            "kafka.sasl_mechanism",
        ),
        (
            "[kafka]\nlibrdkafka = [\"nonsense\"]\n",
            "kafka.librdkafka[0]",
        ),
        (
            "[intel]\nremote_queue_capacity = 0\n",
            "intel.remote_queue_capacity",
        ),
    ];
    for (toml, key) in cases {
        let err = Settings::from_toml_overrides(toml).unwrap_err();
        assert!(
            err.to_string().contains(&format!("`{key}`")),
            "{toml}: {err}"
        );
    }
    let err = Settings::from_toml_overrides("[dedup]\nttl = \"soon\"\n").unwrap_err();
    assert!(err.to_string().contains("ttl"), "{err}");
}

#[test]
fn secrets_are_redacted_in_debug_and_output() {
    let settings = Settings::from_toml_overrides(
        "[kafka]\nsasl_password = \"hunter2-secret\"\n[providers.otx]\napi_key = \"k-123456\"\n\
         [report.narrative]\napi_key = \"sk-narrative-777\"\n",
    )
    .expect("loads");
    let rendered = settings.to_redacted_toml();
    let debug = format!("{settings:?}");
    for text in [&rendered, &debug] {
        assert!(!text.contains("hunter2-secret") && !text.contains("k-123456"));
        assert!(!text.contains("sk-narrative-777"));
    }
    assert!(rendered.contains("<redacted>"));
    assert_eq!(settings.kafka.sasl_password.expose(), "hunter2-secret");
}

#[test]
fn environment_strings_are_taken_verbatim() {
    let settings = Settings::load_with_env(
        None,
        env_from(&[
            ("THREATSIFT__KAFKA__SASL_PASSWORD", "0123"),
            ("THREATSIFT__KAFKA__INPUT_TOPICS", "2024"),
            ("THREATSIFT__KAFKA__SASL_USERNAME", "True"),
        ]),
    )
    .expect("loads");
    assert_eq!(settings.kafka.sasl_password.expose(), "0123");
    assert_eq!(settings.kafka.input_topics, vec!["2024"]);
    assert_eq!(settings.kafka.sasl_username, "True");
}

#[test]
fn passthrough_secrets_are_redacted() {
    let settings = Settings::from_toml_overrides(
        "[kafka]\nlibrdkafka = [\"sasl.password=pw-123\", \"ssl.key.pem=KEY\", \"linger.ms=7\"]\n",
    )
    .expect("loads");
    let shown = format!("{}{:?}", settings.to_redacted_toml(), settings);
    assert!(
        !shown.contains("pw-123") && !shown.contains("KEY"),
        "{shown}"
    );
    assert!(shown.contains("linger.ms=7"));
    assert_eq!(
        settings.librdkafka_overrides().get("sasl.password"),
        Some(&"pw-123".into())
    );
}

#[test]
fn librdkafka_passthrough_accepts_a_table_with_dotted_names() {
    let settings = Settings::from_toml_overrides(
        "[kafka.librdkafka]\n\"fetch.min.bytes\" = 65536\n\"compression.type\" = \"lz4\"\n",
    )
    .expect("loads");
    let overrides = settings.librdkafka_overrides();
    assert_eq!(overrides.get("fetch.min.bytes"), Some(&"65536".into()));
    assert_eq!(overrides.get("compression.type"), Some(&"lz4".into()));
    let from_env = Settings::load_with_env(
        None,
        env_from(&[("THREATSIFT__KAFKA__LIBRDKAFKA", "linger.ms=7,acks=all")]),
    )
    .expect("loads");
    assert_eq!(
        from_env.librdkafka_overrides().get("acks"),
        Some(&"all".into())
    );
}

#[test]
fn librdkafka_passthrough_keeps_dotted_names() {
    let settings =
        Settings::from_toml_overrides("[kafka]\nlibrdkafka = [\"fetch.min.bytes = 10\"]\n")
            .expect("loads");
    assert_eq!(
        settings.librdkafka_overrides().get("fetch.min.bytes"),
        Some(&"10".into())
    );
}

#[test]
fn secret_file_is_read_when_inline_value_is_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    std::fs::write(&path, "s3cret\n").expect("write");
    let resolved = Secret::default()
        .resolve(path.to_str().unwrap_or_default(), "k")
        .unwrap();
    assert_eq!(resolved.expose(), "s3cret");
    let err = Secret::default()
        .resolve("/nonexistent/key", "kafka.x")
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/key"));
}

#[test]
fn errors_keep_their_sources() {
    use std::error::Error as _;
    let err = Secret::default()
        .resolve("/nonexistent/key", "kafka.x")
        .unwrap_err();
    assert_eq!(err.kind(), "invalid");
    assert!(
        err.to_string()
            .starts_with("configuration key `kafka.x`: cannot read secret file /nonexistent/key: "),
        "{err}"
    );
    let io = err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("io::Error source");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    let err = Settings::from_toml_overrides("[dedup]\nttl = \"soon\"\n").unwrap_err();
    assert_eq!(err.kind(), "load");
    assert!(err.source().is_some(), "{err}");
}

mod layering_tests {
    use super::*;

    #[test]
    fn a_later_feeds_list_replaces_the_default_one() {
        let none = Settings::from_toml_overrides("feeds = []\n").expect("loads");
        assert!(none.feeds.is_empty());
        let two = Settings::from_toml_overrides(
            "[[feeds]]\nname = \"a\"\npath = \"a.txt\"\nweight = 10\n\
             [[feeds]]\nname = \"b\"\npath = \"b.txt\"\nweight = 20\n",
        )
        .expect("loads");
        let names: Vec<&str> = two.feeds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}

#[test]
fn the_passthrough_refuses_the_keys_the_delivery_promise_depends_on() {
    for key in [
        "enable.auto.offset.store",
        "enable.auto.commit",
        "acks",
        "enable.idempotence",
    ] {
        let toml = format!("[kafka]\nlibrdkafka = [\"fetch.min.bytes=1\", \" {key} = x\"]\n");
        let err = Settings::from_toml_overrides(&toml)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`kafka.librdkafka[1]`") && err.contains(key),
            "{err}"
        );
    }
    Settings::from_toml_overrides("[kafka]\nlibrdkafka = [\"fetch.queue.backoff.ms=50\"]\n")
        .expect("other keys pass");
    Settings::from_toml_overrides(
        "[kafka]\nlibrdkafka = [\"acks=all\", \"enable.idempotence=true\"]\n",
    )
    .expect("the values the daemon sets itself pass");
}
