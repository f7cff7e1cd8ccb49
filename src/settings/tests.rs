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
    assert!(settings.feeds.is_empty(), "no feed unless configured");
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

// --- issue 13: paths, defaults and couplings that cannot surprise ---------------------------

#[test]
fn relative_paths_in_a_config_file_are_taken_from_its_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).expect("mkdir");
    let file = etc.join("threatsift.toml");
    std::fs::write(
        &file,
        "[kafka]\nssl_ca_location = \"tls/ca.pem\"\nsasl_password_file = \"/run/secrets/sasl\"\n\
         [[feeds]]\nname = \"drop\"\npath = \"feeds/drop.txt\"\n\
         [providers.mmdb]\npath = \"asn.mmdb, /var/lib/geo/country.mmdb\"\n\
         [providers.otx]\napi_key_file = \"otx.key\"\n\
         [report]\ndirectory = \"../reports\"\n\
         [report.narrative]\napi_key_file = \"\"\n",
    )
    .expect("write config");
    let settings = Settings::load_with_env(
        Some(&file),
        env_from(&[("THREATSIFT__PROVIDERS__TALOS__PATH", "talos.txt")]),
    )
    .expect("loads");
    let beside = |rel: &str| etc.join(rel).display().to_string();
    assert_eq!(settings.kafka.ssl_ca_location, beside("tls/ca.pem"));
    assert_eq!(settings.feeds[0].path, beside("feeds/drop.txt"));
    assert_eq!(
        settings.providers.get("mmdb").map(|p| p.path.clone()),
        Some(format!("{},/var/lib/geo/country.mmdb", beside("asn.mmdb")))
    );
    assert_eq!(
        settings
            .providers
            .get("otx")
            .map(|p| p.api_key_file.clone()),
        Some(beside("otx.key"))
    );
    assert_eq!(settings.report.directory, beside("../reports"));
    // Absolute paths, empty values ("not set") and the environment's paths stay as they are.
    assert_eq!(settings.kafka.sasl_password_file, "/run/secrets/sasl");
    assert_eq!(settings.report.narrative.api_key_file, "");
    assert_eq!(
        settings.providers.get("talos").map(|p| p.path.clone()),
        Some("talos.txt".to_owned())
    );
}

#[test]
fn a_minimal_feed_entry_gets_the_documented_weight() {
    let settings = Settings::from_toml_overrides("[[feeds]]\nname = \"x\"\npath = \"x.txt\"\n")
        .expect("loads");
    assert_eq!(settings.feeds[0].weight, 70);
    // 70 alone reaches the default malicious threshold, as the README's scoring table says.
    assert!(u32::from(settings.feeds[0].weight) >= settings.scoring.malicious_at);
}

#[test]
fn a_provider_table_accepts_only_the_keys_that_provider_uses() {
    for (toml, key) in [
        (
            "[providers.virustotal]\npath = \"x\"\n",
            "providers.virustotal.path",
        ),
        (
            "[providers.mmdb]\napi_key = \"k\"\n",
            "providers.mmdb.api_key",
        ),
        ("[providers.talos]\nttl = \"1h\"\n", "providers.talos.ttl"),
        (
            "[providers.rdap]\napi_key_file = \"k\"\n",
            "providers.rdap.api_key_file",
        ),
    ] {
        let err = Settings::from_toml_overrides(toml).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
    }
    let err = Settings::load_with_env(
        None,
        env_from(&[("THREATSIFT__PROVIDERS__MMDB__API_KEY", "k")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`providers.mmdb.api_key`"), "{err}");
    Settings::from_toml_overrides(
        "[providers.mmdb]\nenabled = false\npath = \"a.mmdb\"\n\
         [providers.greynoise]\napi_key = \"k\"\nper_day = 5\n\
         [providers.rdap]\nbase_url = \"http://127.0.0.1:1\"\n",
    )
    .expect("each provider's own keys pass");
}

#[test]
fn check_config_output_loads_back_as_a_config_file() {
    // `check-config` prints the effective settings; an operator may save them as a file, so
    // they must hold no key a section refuses.
    let settings = Settings::from_toml_overrides("").expect("defaults");
    let again = Settings::from_toml_overrides(&settings.to_redacted_toml());
    assert!(
        again.is_ok(),
        "{:?}\n{}",
        again.err(),
        settings.to_redacted_toml()
    );
}

#[test]
fn publishing_from_clean_is_refused_because_clean_is_never_produced() {
    let err = Settings::from_toml_overrides("[publish]\nmin_verdict = \"clean\"\n").unwrap_err();
    assert!(err.to_string().contains("`publish.min_verdict`"), "{err}");
    for verdict in ["unknown", "suspicious", "malicious"] {
        Settings::from_toml_overrides(&format!("[publish]\nmin_verdict = \"{verdict}\"\n"))
            .expect(verdict);
    }
}

#[test]
fn the_session_timeout_must_outlast_the_drain() {
    for toml in [
        "[kafka]\nsession_timeout = \"20s\"\n[shutdown]\ndrain_timeout = \"20s\"\n",
        "[kafka]\nsession_timeout = \"10s\"\n[shutdown]\ndrain_timeout = \"30s\"\n",
    ] {
        let err = Settings::from_toml_overrides(toml).unwrap_err();
        assert!(
            err.to_string().contains("`kafka.session_timeout`"),
            "{toml}: {err}"
        );
    }
    Settings::from_toml_overrides(
        "[kafka]\nsession_timeout = \"6s\"\n[shutdown]\ndrain_timeout = \"5s\"\n",
    )
    .expect("a session longer than the drain");
}

#[test]
fn greynoise_default_day_fits_a_free_accounts_week() {
    let settings = Settings::from_toml_overrides("").expect("defaults");
    let per_day = settings
        .providers
        .get("greynoise")
        .map_or(0, |p| p.per_day.budget_limit());
    assert!(
        per_day > 0 && per_day * 7 <= 50 && per_day <= 10,
        "per_day = {per_day}"
    );
}

// --- g-allow: kafka.start_from ---

#[test]
fn start_from_defaults_to_latest_and_maps_to_auto_offset_reset() {
    let defaults = Settings::from_toml_overrides("").expect("defaults");
    assert_eq!(defaults.kafka.start_from.auto_offset_reset(), "latest");
    let from_env = Settings::load_with_env(
        None,
        env_from(&[("THREATSIFT__KAFKA__START_FROM", "earliest")]),
    )
    .expect("loads");
    assert_eq!(from_env.kafka.start_from.auto_offset_reset(), "earliest");
}

#[test]
fn start_from_refuses_other_positions_and_the_passthrough_route() {
    let err = Settings::from_toml_overrides("[kafka]\nstart_from = \"beginning\"\n").unwrap_err();
    assert!(err.to_string().contains("start_from"), "{err}");
    // The passthrough would silently override the key the README documents.
    let err =
        Settings::from_toml_overrides("[kafka]\nlibrdkafka = [\"auto.offset.reset=earliest\"]\n")
            .unwrap_err();
    assert!(
        err.to_string().contains("`kafka.librdkafka[0]`")
            && err.to_string().contains("kafka.start_from"),
        "{err}"
    );
}

// --- g-allow: per_minute / per_day ---

#[test]
fn allowances_take_a_count_unlimited_or_none_and_refuse_a_bare_zero() {
    let settings = Settings::from_toml_overrides(
        "[providers.otx]\nper_minute = 30\nper_day = \"unlimited\"\n\
         [providers.rdap]\nper_day = \"none\"\n",
    )
    .expect("loads");
    let otx = settings.providers.get("otx").unwrap();
    assert_eq!(otx.per_minute, Allowance::Requests(30));
    assert_eq!(otx.per_day, Allowance::Unlimited);
    assert!(settings.providers.get("rdap").unwrap().per_day.is_none());
    // The rendered configuration says the same words back.
    let rendered = settings.to_redacted_toml();
    assert!(rendered.contains("per_day = \"none\""), "{rendered}");
    for zero in [
        "[providers.otx]\nper_day = 0\n",
        "[providers.otx]\nper_minute = \"0\"\n",
    ] {
        let err = Settings::from_toml_overrides(zero).unwrap_err().to_string();
        assert!(
            err.contains("ambiguous") && err.contains("\"unlimited\"") && err.contains("\"none\""),
            "{zero}: {err}"
        );
    }
    let from_env = Settings::load_with_env(
        None,
        env_from(&[("THREATSIFT__PROVIDERS__OTX__PER_DAY", "none")]),
    )
    .expect("loads");
    assert!(from_env.providers.get("otx").unwrap().per_day.is_none());
    let err = Settings::from_toml_overrides("[providers.otx]\nper_day = \"lots\"\n").unwrap_err();
    assert!(err.to_string().contains("per_day"), "{err}");
}
