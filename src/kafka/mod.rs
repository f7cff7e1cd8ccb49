//! Kafka plumbing: the shared client configuration (security and passthrough), the consumer
//! and its rebalance context, the producer, and the offset tracker.

pub(crate) mod consumer;
pub(crate) mod offsets;
pub(crate) mod partition;
pub(crate) mod producer;
pub(crate) mod topics;

use rdkafka::ClientConfig;

use crate::settings::{KafkaSettings, Settings, SettingsError};

/// The settings both clients share: brokers, client id, security, statistics. The
/// `kafka.librdkafka` passthrough is applied last, so an operator can override anything.
pub(crate) fn base_client_config(settings: &Settings) -> Result<ClientConfig, SettingsError> {
    let k: &KafkaSettings = &settings.kafka;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &k.brokers)
        .set("client.id", &k.client_id)
        .set(
            "security.protocol",
            k.security_protocol.to_ascii_lowercase(),
        )
        .set(
            "statistics.interval.ms",
            k.statistics_interval.as_millis().to_string(),
        );
    if k.security_protocol.to_ascii_lowercase().starts_with("sasl") {
        let password = k
            .sasl_password
            .resolve(&k.sasl_password_file, "kafka.sasl_password_file")?;
        config
            .set("sasl.mechanisms", &k.sasl_mechanism)
            .set("sasl.username", &k.sasl_username)
            .set("sasl.password", password.expose());
    }
    let optional = [
        ("ssl.ca.location", &k.ssl_ca_location),
        ("ssl.certificate.location", &k.ssl_certificate_location),
        ("ssl.key.location", &k.ssl_key_location),
    ];
    for (name, value) in optional {
        if !value.is_empty() {
            config.set(name, value);
        }
    }
    if !k.ssl_key_password.is_empty() {
        config.set("ssl.key.password", k.ssl_key_password.expose());
    }
    Ok(config)
}

/// Applies the `kafka.librdkafka` passthrough.
pub(crate) fn apply_passthrough(config: &mut ClientConfig, settings: &Settings) {
    for (name, value) in settings.librdkafka_overrides() {
        config.set(name, value);
    }
}

/// A bounded label for a librdkafka error.
pub(crate) fn error_kind(error: &rdkafka::error::KafkaError) -> &'static str {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};
    match error.rdkafka_error_code() {
        Some(C::Fatal) => "fatal",
        Some(C::QueueFull) => "queue_full",
        Some(C::MessageTimedOut) => "message_timed_out",
        Some(C::MessageSizeTooLarge) => "message_too_large",
        Some(C::UnknownTopicOrPartition) | Some(C::UnknownTopic) => "unknown_topic",
        Some(C::AllBrokersDown) => "all_brokers_down",
        Some(C::BrokerTransportFailure) => "transport",
        Some(C::TopicAuthorizationFailed) | Some(C::GroupAuthorizationFailed) => "authorization",
        Some(C::Authentication) | Some(C::SaslAuthenticationFailed) => "authentication",
        Some(C::NotLeaderForPartition) | Some(C::LeaderNotAvailable) => "leader_not_available",
        Some(C::RequestTimedOut) | Some(C::OperationTimedOut) => "timeout",
        Some(_) => "other",
        None => match error {
            KafkaError::Canceled => "canceled",
            _ => "client",
        },
    }
}
