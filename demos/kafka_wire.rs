//! `--bootstrap`: the demos' messages travel through a real Kafka broker.
//!
//! A topic `kts-demo-<uuid>` (one partition) is created for the run and deleted after. Every
//! message the simulated network sends is produced as one record (key = message id, value = the
//! serialised payload); when the seeded schedule delivers it, the payload handed to the receiver
//! is the one read back from the topic. The schedule itself stays the seeded one, so a run
//! through Kafka prints the same tables as the offline run — with every byte having made the
//! round trip through the broker. A record that does not come back within the timeout fails the
//! run.

use crate::sim_net::{NodeIx, Wire};
use anyhow::{anyhow, bail, Context, Result};
use kafka_timesync::kafka::{assign_all_partitions, Admin, ClientSettings, StartAt};
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(30);

/// Carries payloads through a Kafka topic created for the run.
pub struct KafkaWire {
    bootstrap: String,
    topic: String,
    runtime: tokio::runtime::Runtime,
    admin: Admin,
    producer: BaseProducer,
    consumer: BaseConsumer,
    /// Records read from the topic but not yet delivered by the schedule.
    arrived: HashMap<u64, Vec<u8>>,
    produced: u64,
    consumed: u64,
    unflushed: bool,
    deleted: bool,
}

impl KafkaWire {
    /// Creates the run's topic on `bootstrap` and connects a producer and a consumer to it.
    pub fn connect(bootstrap: &str) -> Result<Self> {
        let settings = ClientSettings::new(bootstrap);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let admin = Admin::new(&settings)?;
        let topic = format!("kts-demo-{}", uuid::Uuid::new_v4());
        runtime
            .block_on(admin.create_topic(&topic, 1, None))
            .with_context(|| format!("creating topic {topic} on {bootstrap}"))?;
        let wire = Self {
            bootstrap: bootstrap.to_string(),
            topic: topic.clone(),
            producer: settings
                .producer_config()
                .create()
                .context("creating the Kafka producer")?,
            // librdkafka wants a group id even for manual assignment; nothing is committed.
            consumer: settings
                .consumer_config(Some(&topic))
                .create()
                .context("creating the Kafka consumer")?,
            runtime,
            admin,
            arrived: HashMap::new(),
            produced: 0,
            consumed: 0,
            unflushed: false,
            deleted: false,
        };
        // From here on, dropping `wire` deletes the topic.
        wire.admin.wait_for_topic(&topic, 1, ROUND_TRIP_TIMEOUT)?;
        assign_all_partitions(
            &wire.consumer,
            &topic,
            StartAt::Beginning,
            ROUND_TRIP_TIMEOUT,
        )?;
        Ok(wire)
    }

    /// Deletes the run's topic (also attempted on drop).
    pub fn close(&mut self) -> Result<()> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        self.runtime
            .block_on(self.admin.delete_topic(&self.topic))
            .with_context(|| format!("deleting topic {}", self.topic))
    }
}

impl Drop for KafkaWire {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            eprintln!("time_sync_demo: warning: {e:#}");
        }
    }
}

impl Wire for KafkaWire {
    fn carry(&mut self, id: u64, _from: NodeIx, _to: NodeIx, bytes: Vec<u8>) -> Result<()> {
        let key = id.to_string();
        let mut record = BaseRecord::to(&self.topic).key(&key).payload(&bytes);
        let deadline = Instant::now() + ROUND_TRIP_TIMEOUT;
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((e, r)) if Instant::now() < deadline => {
                    // Queue full: let librdkafka make room, then retry.
                    tracing::debug!("produce retry: {e}");
                    self.producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => bail!("producing message {id} to {}: {e}", self.topic),
            }
        }
        self.produced += 1;
        self.unflushed = true;
        Ok(())
    }

    fn fetch(&mut self, id: u64, from: NodeIx, to: NodeIx) -> Result<Vec<u8>> {
        if let Some(b) = self.arrived.remove(&id) {
            return Ok(b);
        }
        if self.unflushed {
            self.producer
                .flush(ROUND_TRIP_TIMEOUT)
                .with_context(|| format!("flushing to {}", self.topic))?;
            self.unflushed = false;
        }
        let deadline = Instant::now() + ROUND_TRIP_TIMEOUT;
        while Instant::now() < deadline {
            let Some(m) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.with_context(|| format!("consuming from {}", self.topic))?;
            let key: u64 = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.parse().ok())
                .ok_or_else(|| {
                    anyhow!(
                        "record at offset {} of {} has no message id",
                        m.offset(),
                        self.topic
                    )
                })?;
            let payload = m.payload().unwrap_or_default().to_vec();
            self.consumed += 1;
            if key == id {
                return Ok(payload);
            }
            self.arrived.insert(key, payload);
        }
        bail!("message {id} ({from}→{to}) did not come back from topic {} within {ROUND_TRIP_TIMEOUT:?}", self.topic)
    }

    fn describe(&self) -> Value {
        json!({
            "kind": "kafka",
            "bootstrap": self.bootstrap,
            "topic": self.topic,
            "records_produced": self.produced,
            "records_consumed": self.consumed,
        })
    }

    fn summary(&self) -> String {
        format!(
            "Kafka at {}: {} records through topic {} (deleted after the run)",
            self.bootstrap, self.produced, self.topic
        )
    }
}
