//! `[kafka]`: brokers, topics, security, client tuning and the librdkafka passthrough.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::passthrough::list_or_comma_separated;
use super::{require_non_empty, Passthrough, Secret, SettingsError};

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Topics to read events from (from the environment: comma-separated).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub input_topics: Vec<String>,
    /// Topic threat records are published to.
    pub output_topic: String,
    /// Topic unparseable input goes to.
    pub dlq_topic: String,
    /// `client.id` of both clients.
    pub client_id: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL protocols only).
    pub sasl_mechanism: String,
    /// SASL user name.
    pub sasl_username: String,
    /// SASL password (secret).
    pub sasl_password: Secret,
    /// File holding the SASL password, used when `sasl_password` is empty.
    pub sasl_password_file: String,
    /// CA bundle for TLS.
    pub ssl_ca_location: String,
    /// Client certificate for mutual TLS.
    pub ssl_certificate_location: String,
    /// Client key for mutual TLS.
    pub ssl_key_location: String,
    /// Password of the client key (secret).
    pub ssl_key_password: Secret,
    /// Consumer group session timeout.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How often stored offsets are committed in the background.
    #[serde(with = "humantime_serde")]
    pub auto_commit_interval: Duration,
    /// How often librdkafka statistics (lag, queues) are sampled; 0s disables.
    #[serde(with = "humantime_serde")]
    pub statistics_interval: Duration,
    /// Raw librdkafka properties applied last, as `"name=value"` strings.
    pub librdkafka: Passthrough,
    /// Where a group without a committed offset starts reading (`auto.offset.reset`).
    #[serde(default)]
    pub start_from: StartFrom,
}

/// `kafka.start_from`: where a consumer group without a committed offset starts on a partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The end of the partition: only events produced after the group joined (the default; a
    /// first deployment does not replay, and pay lookups for, the whole retention window).
    #[default]
    Latest,
    /// The beginning of the partition: the whole retention window is read.
    Earliest,
}

impl StartFrom {
    /// The librdkafka `auto.offset.reset` value.
    pub fn auto_offset_reset(self) -> &'static str {
        match self {
            StartFrom::Latest => "latest",
            StartFrom::Earliest => "earliest",
        }
    }
}

/// librdkafka settings the delivery promise depends on, and the values the passthrough may
/// give them (the ones the daemon sets itself): offsets stored only after delivery, then
/// committed; acks from every in-sync replica; an idempotent producer.
const PROMISE_KEYS: [(&str, &[&str]); 6] = [
    ("enable.auto.offset.store", &["false"]),
    ("enable.auto.commit", &["true"]),
    ("auto.commit.enable", &["true"]),
    ("acks", &["all", "-1"]),
    ("request.required.acks", &["all", "-1"]),
    ("enable.idempotence", &["true"]),
];

impl KafkaSettings {
    /// Required names, distinct topics, a known protocol and mechanism, well-formed passthrough
    /// entries and a session timeout librdkafka accepts.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        require_non_empty("kafka.brokers", &self.brokers)?;
        require_non_empty("kafka.group_id", &self.group_id)?;
        require_non_empty("kafka.output_topic", &self.output_topic)?;
        require_non_empty("kafka.dlq_topic", &self.dlq_topic)?;
        if self.input_topics.is_empty() {
            return Err(SettingsError::invalid(
                "kafka.input_topics",
                "at least one topic is needed",
            ));
        }
        for (i, topic) in self.input_topics.iter().enumerate() {
            require_non_empty(&format!("kafka.input_topics[{i}]"), topic)?;
            if topic == &self.output_topic || topic == &self.dlq_topic {
                return Err(SettingsError::invalid(
                    format!("kafka.input_topics[{i}]"),
                    format!("`{topic}` is also the output or DLQ topic; that would loop"),
                ));
            }
        }
        if self.output_topic == self.dlq_topic {
            return Err(SettingsError::invalid(
                "kafka.dlq_topic",
                "must differ from output_topic",
            ));
        }
        let protocol = self.security_protocol.to_ascii_lowercase();
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
            return Err(SettingsError::invalid(
                "kafka.security_protocol",
                "expected plaintext, ssl, sasl_plaintext or sasl_ssl",
            ));
        }
        if protocol.starts_with("sasl")
            && !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&self.sasl_mechanism.as_str())
        {
            return Err(SettingsError::invalid(
                "kafka.sasl_mechanism",
                "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with a SASL security_protocol",
            ));
        }
        for (i, entry) in self.librdkafka.0.iter().enumerate() {
            let promised = |name: &str, value: &str| {
                PROMISE_KEYS
                    .iter()
                    .find(|(key, _)| *key == name)
                    .filter(|(_, allowed)| !allowed.contains(&value.to_ascii_lowercase().as_str()))
                    .map(|(_, allowed)| allowed.join(" or "))
            };
            match entry.split_once('=') {
                Some((name, value)) if promised(name.trim(), value.trim()).is_some() => {
                    return Err(SettingsError::invalid(
                        format!("kafka.librdkafka[{i}]"),
                        format!(
                            "`{}` must stay {}: the delivery promise depends on it (offsets \
                             stored only after delivery, acks from every in-sync replica, an \
                             idempotent producer)",
                            name.trim(),
                            promised(name.trim(), value.trim()).unwrap_or_default()
                        ),
                    ))
                }
                Some((name, _)) if name.trim() == "auto.offset.reset" => {
                    return Err(SettingsError::invalid(
                        format!("kafka.librdkafka[{i}]"),
                        "set the start position with kafka.start_from = \"latest\" | \"earliest\"",
                    ))
                }
                Some((name, _)) if !name.trim().is_empty() => {}
                _ => {
                    return Err(SettingsError::invalid(
                        format!("kafka.librdkafka[{i}]"),
                        "expected \"name=value\"",
                    ))
                }
            }
        }
        if self.session_timeout < Duration::from_secs(6) {
            return Err(SettingsError::invalid(
                "kafka.session_timeout",
                "must be at least 6s",
            ));
        }
        Ok(())
    }
}
