//! Topic administration and metadata: create (if missing), wait until visible, delete, list,
//! partitions, watermarks.
//!
//! Metadata calls are blocking and bounded by the given timeout (librdkafka has no async
//! metadata API); create/delete are async.

use super::error::{describe, describe_code, KafkaError};
use super::retry::{retry, Topic};
use super::{ClientSettings, LogContext};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use std::time::{Duration, Instant};

/// Low and high watermark of one partition: offsets `low..high` are readable; `high` is the
/// offset the next record will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// Partition id.
    pub partition: i32,
    /// First readable offset.
    pub low: i64,
    /// One past the last record.
    pub high: i64,
}

/// The partition ids of `topic`, sorted. `TopicNotFound` when the broker does not know it (after
/// [`Topic::CREATION_GRACE`]: a topic just created may not be known yet). Asked again while its
/// leaders are elected or move ([`retry`]) within `timeout`.
pub fn topic_partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let op = || format!("fetch metadata of topic '{topic}'");
    let unknown = RdError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition);
    let listed = retry(timeout, Topic::MayBeNew, |left| {
        let md = client.fetch_metadata(Some(topic), left)?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            return Err(unknown.clone());
        };
        if let Some(e) = t.error() {
            return Err(RdError::MetadataFetch(RDKafkaErrorCode::from(e)));
        }
        if t.partitions().is_empty() {
            return Err(unknown.clone());
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    });
    match listed {
        Ok(ids) => Ok(ids),
        Err(RdError::MetadataFetch(
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
        )) => Err(KafkaError::TopicNotFound(topic.to_string())),
        Err(RdError::MetadataFetch(code)) => Err(KafkaError::Operation {
            operation: op(),
            message: describe_code(code),
        }),
        Err(e) => Err(KafkaError::Operation {
            operation: op(),
            message: describe(&e),
        }),
    }
}

/// Low and high watermark of `topic`/`partition`: asked again while the partition has no leader
/// yet, its leader moves, or (for [`Topic::CREATION_GRACE`]) its leader does not know it yet
/// ([`retry`]), within `timeout`.
pub fn partition_watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Watermarks, KafkaError> {
    retry(timeout, Topic::MayBeNew, |left| {
        client.fetch_watermarks(topic, partition, left)
    })
    .map(|(low, high)| Watermarks {
        partition,
        low,
        high,
    })
    .map_err(|e| KafkaError::Operation {
        operation: format!("fetch watermarks of {topic}/{partition}"),
        message: describe(&e),
    })
}

/// Watermarks of every partition of `topic`, sorted by partition.
pub fn topic_watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Watermarks>, KafkaError> {
    topic_partitions(client, topic, timeout)?
        .into_iter()
        .map(|partition| partition_watermarks(client, topic, partition, timeout))
        .collect()
}

/// An admin client plus metadata helpers.
pub struct Admin {
    client: AdminClient<LogContext>,
    timeout: Duration,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// Default bound of each broker round trip.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// An admin client for the cluster of `settings`.
    pub fn new(settings: &ClientSettings) -> Result<Self, KafkaError> {
        let client = settings
            .admin_config()
            .create_with_context(LogContext::new(settings))
            .map_err(|e| settings.client_error("admin client", &e))?;
        Ok(Self {
            client,
            timeout: Self::DEFAULT_TIMEOUT,
        })
    }

    /// Uses `timeout` as the bound of each broker round trip.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn opts(&self) -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout))
    }

    /// Creates `topic` with `partitions` partitions unless it exists, with `replication`
    /// replicas per partition or, for `None`, the cluster's `default.replication.factor`
    /// (KIP-464). Returns true when created, false when it already existed.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication: Option<i32>,
    ) -> Result<bool, KafkaError> {
        let op = || format!("create topic '{topic}'");
        // -1 asks the broker for its default (Kafka 2.4 and later).
        let replicas = TopicReplication::Fixed(replication.unwrap_or(-1));
        let new = NewTopic::new(topic, partitions, replicas);
        let results = self
            .client
            .create_topics([&new], &self.opts())
            .await
            .map_err(|e| KafkaError::Operation {
                operation: op(),
                message: describe(&e),
            })?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(true),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
            Some(Err((_, code))) => Err(KafkaError::Operation {
                operation: op(),
                message: describe_code(code),
            }),
            None => Err(KafkaError::Operation {
                operation: op(),
                message: "no result".into(),
            }),
        }
    }

    /// Deletes `topic`. Deleting a topic that does not exist is an error (`TopicNotFound`).
    pub async fn delete_topic(&self, topic: &str) -> Result<(), KafkaError> {
        let op = || format!("delete topic '{topic}'");
        let results = self
            .client
            .delete_topics(&[topic], &self.opts())
            .await
            .map_err(|e| KafkaError::Operation {
                operation: op(),
                message: describe(&e),
            })?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                Err(KafkaError::TopicNotFound(topic.to_string()))
            }
            Some(Err((_, code))) => Err(KafkaError::Operation {
                operation: op(),
                message: describe_code(code),
            }),
            None => Err(KafkaError::Operation {
                operation: op(),
                message: "no result".into(),
            }),
        }
    }

    /// Names of all topics, sorted (blocking).
    pub fn list_topics(&self) -> Result<Vec<String>, KafkaError> {
        let md = self
            .client
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| KafkaError::Operation {
                operation: "list topics".into(),
                message: describe(&e),
            })?;
        let mut names: Vec<String> = md.topics().iter().map(|t| t.name().to_string()).collect();
        names.sort();
        Ok(names)
    }

    /// Partition ids of `topic` (blocking).
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, KafkaError> {
        topic_partitions(self.client.inner(), topic, self.timeout)
    }

    /// Watermarks of every partition of `topic` (blocking).
    pub fn watermarks(&self, topic: &str) -> Result<Vec<Watermarks>, KafkaError> {
        topic_watermarks(self.client.inner(), topic, self.timeout)
    }

    /// Waits (blocking, polling metadata) until `topic` is visible with at least
    /// `min_partitions` partitions, each with a leader; returns its partition ids.
    pub fn wait_for_topic(
        &self,
        topic: &str,
        min_partitions: usize,
        timeout: Duration,
    ) -> Result<Vec<i32>, KafkaError> {
        let deadline = Instant::now() + timeout;
        let mut last_err;
        loop {
            let step = self
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match self
                .client
                .inner()
                .fetch_metadata(Some(topic), step.max(Duration::from_millis(100)))
            {
                Ok(md) => {
                    let ready = md
                        .topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .and_then(|t| {
                            let ok = t.error().is_none()
                                && t.partitions().len() >= min_partitions
                                && t.partitions()
                                    .iter()
                                    .all(|p| p.leader() >= 0 && p.error().is_none());
                            ok.then(|| {
                                let mut ids: Vec<i32> =
                                    t.partitions().iter().map(|p| p.id()).collect();
                                ids.sort_unstable();
                                ids
                            })
                        });
                    if let Some(ids) = ready {
                        return Ok(ids);
                    }
                    last_err = "not visible yet".to_string();
                }
                Err(e) => last_err = describe(&e),
            }
            if Instant::now() >= deadline {
                return Err(KafkaError::Timeout(format!(
                    "topic '{topic}' not ready with {min_partitions} partitions within {:?}: {last_err}",
                    timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
