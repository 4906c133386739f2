//! Errors of the Kafka shell, and the mapping of rdkafka errors to clear one-line messages.

use super::redact;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode as Code};

/// An error of the Kafka shell. Every `Display` is one line and free of secret values.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A `-X` argument or config-file entry that is not `key=value`.
    #[error("invalid Kafka property {0}")]
    InvalidProperty(String),
    /// librdkafka could not create a client.
    #[error("cannot create Kafka {role}: {message}")]
    Client {
        /// "producer", "consumer", "admin client".
        role: &'static str,
        /// One line, secrets scrubbed.
        message: String,
    },
    /// librdkafka refused a property of the client configuration (unknown name, invalid value).
    #[error("cannot create Kafka {role}: {message}")]
    RefusedProperty {
        /// "producer", "consumer", "admin client".
        role: &'static str,
        /// One line naming the property, secrets scrubbed.
        message: String,
    },
    /// The topic does not exist, and the broker did not create it on first use.
    #[error(
        "topic '{0}' does not exist and is not created on first use: create it with \
         kafka-producer --create-topic N {0} (N partitions)"
    )]
    TopicNotFound(String),
    /// A broker operation failed.
    #[error("{operation}: {message}")]
    Operation {
        /// What was being done ("create topic 'x'", "fetch metadata", ...).
        operation: String,
        /// One line.
        message: String,
    },
    /// A wait ran out of time.
    #[error("{0}")]
    Timeout(String),
}

impl KafkaError {
    /// True for a mistake in the configuration the user gave (a `-X` argument or `[kafka]` entry
    /// that is not `key=value`, a property librdkafka refuses), not a failure of the cluster.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            KafkaError::InvalidProperty(_) | KafkaError::RefusedProperty { .. }
        )
    }
}

/// A clear, one-line explanation of an rdkafka error code.
pub fn describe_code(code: Code) -> String {
    let hint = match code {
        Code::MessageTimedOut => {
            "not delivered within message.timeout.ms (is the broker reachable at the bootstrap address?)"
        }
        Code::AllBrokersDown => "all brokers are down or unreachable (check --bootstrap)",
        Code::BrokerTransportFailure => "connection to the broker failed (check --bootstrap)",
        Code::Resolve => "cannot resolve the bootstrap host name (check --bootstrap)",
        Code::OperationTimedOut | Code::RequestTimedOut => {
            "the broker did not answer in time (is it reachable at the bootstrap address?)"
        }
        Code::UnknownTopicOrPartition | Code::UnknownTopic => {
            "the topic or partition does not exist (topics are not auto-created)"
        }
        Code::TopicAuthorizationFailed => "not authorised to access the topic",
        Code::ClusterAuthorizationFailed => "not authorised by the cluster",
        Code::GroupAuthorizationFailed => "not authorised to use the consumer group",
        Code::SaslAuthenticationFailed | Code::Authentication => {
            "authentication failed (check the SASL/SSL properties)"
        }
        Code::MessageSizeTooLarge | Code::InvalidMessageSize => {
            "message too large for the broker (see message.max.bytes)"
        }
        Code::QueueFull => "the local producer queue is full",
        Code::TopicAlreadyExists => "the topic already exists",
        Code::InvalidPartitions => "invalid number of partitions",
        Code::InvalidReplicationFactor => "invalid replication factor for this cluster",
        Code::Fatal => "fatal client error (idempotence guarantees could not be kept)",
        _ => "",
    };
    if hint.is_empty() {
        code.to_string()
    } else {
        format!("{hint} [{code:?}]")
    }
}

/// A clear one-line message for an rdkafka error; values of sensitive properties are redacted.
pub fn describe(err: &RdError) -> String {
    let line = match err {
        RdError::ClientConfig(_, desc, key, value) => {
            let value = redact::display_value(key, value);
            let desc = if redact::is_sensitive(key) {
                redact::scrub(desc, [value_of(err)])
            } else {
                desc.clone()
            };
            format!("invalid Kafka property {key}={value}: {desc}")
        }
        RdError::ClientCreation(msg) => msg.clone(),
        RdError::MessageProduction(c) => format!("message not delivered: {}", describe_code(*c)),
        RdError::MessageConsumption(c) | RdError::MessageConsumptionFatal(c) => {
            format!("consume failed: {}", describe_code(*c))
        }
        RdError::MetadataFetch(c) => format!("metadata fetch failed: {}", describe_code(*c)),
        RdError::AdminOp(c) => describe_code(*c),
        RdError::Flush(c) => format!("flush failed: {}", describe_code(*c)),
        RdError::Global(c) => describe_code(*c),
        RdError::OffsetFetch(c) => format!("offset fetch failed: {}", describe_code(*c)),
        RdError::ConsumerCommit(c) => format!("offset commit failed: {}", describe_code(*c)),
        other => other.to_string(),
    };
    one_line(&line)
}

/// True for a consume error that retrying cannot fix (the topic is gone, access is denied,
/// authentication failed, the client is in a fatal state); librdkafka retries the others itself.
pub fn is_fatal_consume_error(err: &RdError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            Code::UnknownTopicOrPartition
                | Code::UnknownTopic
                | Code::TopicAuthorizationFailed
                | Code::GroupAuthorizationFailed
                | Code::SaslAuthenticationFailed
                | Code::Fatal
        )
    )
}

fn value_of(err: &RdError) -> &str {
    match err {
        RdError::ClientConfig(_, _, _, value) => value,
        _ => "",
    }
}

/// Collapses newlines so every message fits on one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaConfRes;

    #[test]
    fn config_error_for_a_secret_property_hides_the_value() {
        let err = RdError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for configuration property \"sasl.password\"".into(),
            "sasl.password".into(),
            "hunter2".into(),
        );
        let msg = describe(&err);
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("sasl.password=***"), "{msg}");
    }

    #[test]
    fn config_error_for_an_ordinary_property_shows_the_value() {
        let err = RdError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"sometimes\" for configuration property \"acks\"".into(),
            "acks".into(),
            "sometimes".into(),
        );
        assert!(describe(&err).contains("acks=sometimes"));
    }

    #[test]
    fn delivery_timeout_says_what_to_check() {
        let msg = describe(&RdError::MessageProduction(Code::MessageTimedOut));
        assert!(msg.contains("bootstrap"), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
