//! The dead-letter topic: poison records with their context, acknowledged before the offsets
//! that pass them are committed.
//!
//! Headers follow Kafka Connect's `errors.deadletterqueue.context.headers.enable` names
//! (`__connect.errors.*`), so tools that read Connect's dead-letter topics read lockstep's too;
//! `__lockstep.errors.*` adds what Connect has no name for.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::ApplyError;

/// Where a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The bytes are not a Debezium change event the sink understands.
    Decode,
    /// The event cannot be turned into a row of the target table.
    Plan,
    /// The target database refused the row.
    Apply,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Plan => "plan",
            Stage::Apply => "apply",
        }
    }
}

/// A poison record and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub stage: Stage,
    pub table: Option<String>,
    pub reason: String,
}

pub struct DeadLetterQueue {
    producer: FutureProducer,
    topic: String,
    pipeline: String,
}

impl DeadLetterQueue {
    pub fn new(
        bootstrap_servers: &str,
        extra: &std::collections::BTreeMap<String, String>,
        topic: &str,
        pipeline: &str,
    ) -> Result<Self, ApplyError> {
        let mut config = ClientConfig::new();
        for (k, v) in extra {
            // Consumer-only properties would make the producer refuse to start.
            if !k.starts_with("fetch.") && !k.starts_with("max.poll") && k != "session.timeout.ms" {
                config.set(k, v);
            }
        }
        let producer = config
            .set("bootstrap.servers", bootstrap_servers)
            .set("acks", "all")
            .set("message.timeout.ms", "60000")
            .set("client.id", format!("lockstep-sink-{pipeline}-dlq"))
            .create()
            .map_err(|e| ApplyError::Kafka(format!("creating the dead-letter producer: {e}")))?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            pipeline: pipeline.to_string(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Produces the records and waits for every acknowledgement. An error means some may not be
    /// stored: the caller must not commit offsets past them (they will be re-read and re-sent,
    /// so the dead-letter topic is at-least-once).
    pub async fn send_all(&self, letters: &[DeadLetter]) -> Result<(), ApplyError> {
        let mut pending = Vec::with_capacity(letters.len());
        for letter in letters {
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len() + 8);
            for (name, value) in &letter.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: value.as_deref(),
                });
            }
            let context = [
                ("__connect.errors.topic", letter.topic.as_str()),
                ("__connect.errors.partition", partition.as_str()),
                ("__connect.errors.offset", offset.as_str()),
                ("__connect.errors.connector.name", self.pipeline.as_str()),
                ("__connect.errors.stage", letter.stage.as_str()),
                ("__connect.errors.exception.message", letter.reason.as_str()),
                (
                    "__lockstep.errors.table",
                    letter.table.as_deref().unwrap_or(""),
                ),
            ];
            for (name, value) in context {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &letter.value {
                record = record.payload(value.as_slice());
            }
            pending.push(self.producer.send(record, Duration::from_secs(60)));
        }
        for (delivery, letter) in pending.into_iter().zip(letters) {
            delivery.await.map_err(|(e, _)| {
                ApplyError::Kafka(format!(
                    "the dead-letter topic {} did not acknowledge record {}/{}@{}: {e}; the sink stops before passing it",
                    self.topic, letter.topic, letter.partition, letter.offset
                ))
            })?;
        }
        Ok(())
    }
}
