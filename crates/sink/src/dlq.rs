//! The dead-letter topic: poison records with their context, acknowledged before the offsets
//! that pass them are committed.
//!
//! Headers follow Kafka Connect's `errors.deadletterqueue.context.headers.enable` names
//! (`__connect.errors.*`), so tools that read Connect's dead-letter topics read lockstep's too;
//! `__lockstep.errors.*` adds what Connect has no name for.
//!
//! The sink keeps no copy of the records it decoded: a record that turns out poison after it was
//! decoded (the target refuses its row, it does not fit the table) is read again from Kafka, by
//! its offset, to go to the dead-letter topic exactly as it was. The offsets that pass it are not
//! committed yet, so it is still there unless retention or compaction removed it meanwhile; then
//! the batch fails, saying so, rather than send a dead letter without the record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

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

/// A record's own key, value and headers, as read from Kafka.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Original {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Original {
    pub(crate) fn of<M: Message>(message: &M) -> Self {
        Self {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A poison record and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// `None` when the sink kept no copy of the record: it is read again from Kafka when the
    /// letter is sent.
    pub original: Option<Original>,
    pub stage: Stage,
    pub table: Option<String>,
    pub reason: String,
}

pub struct DeadLetterQueue {
    producer: FutureProducer,
    /// The sink consumer's settings, to read poison records again.
    consumer_config: ClientConfig,
    topic: String,
    pipeline: String,
}

/// How long reading poison records again may take before the batch fails.
const REREAD_TIMEOUT: Duration = Duration::from_secs(30);

type Position = (String, i32, i64);

impl DeadLetterQueue {
    /// `consumer_config` is the sink consumer's, used to read poison records again.
    pub fn new(
        bootstrap_servers: &str,
        extra: &std::collections::BTreeMap<String, String>,
        consumer_config: ClientConfig,
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
            consumer_config,
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
        let wanted: BTreeSet<Position> = letters
            .iter()
            .filter(|l| l.original.is_none())
            .map(|l| (l.topic.clone(), l.partition, l.offset))
            .collect();
        let reread = if wanted.is_empty() {
            HashMap::new()
        } else {
            let config = self.consumer_config.clone();
            tokio::task::spawn_blocking(move || reread(config, &wanted, REREAD_TIMEOUT))
                .await
                .map_err(|e| {
                    ApplyError::Kafka(format!("reading poison records again failed: {e}"))
                })??
        };
        let mut pending = Vec::with_capacity(letters.len());
        for letter in letters {
            let original = match &letter.original {
                Some(original) => original,
                None => reread
                    .get(&(letter.topic.clone(), letter.partition, letter.offset))
                    .ok_or_else(|| not_there(letter))?,
            };
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let mut headers = OwnedHeaders::new_with_capacity(original.headers.len() + 8);
            for (name, value) in &original.headers {
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
            if let Some(key) = &original.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &original.value {
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

fn not_there(letter: &DeadLetter) -> ApplyError {
    ApplyError::Kafka(format!(
        "poison record {}/{}@{} ({}) could not be read again from Kafka to send it to the dead-letter topic: retention or compaction removed it; the sink stops before passing it (resume from a new snapshot of its table, or fix the record's cause and restart)",
        letter.topic, letter.partition, letter.offset, letter.reason
    ))
}

/// Reads the records at these positions again, with a consumer of its own (assigned, no group
/// membership, no offsets committed). A position that is no longer in its partition is left
/// out of the answer.
fn reread(
    mut config: ClientConfig,
    wanted: &BTreeSet<Position>,
    timeout: Duration,
) -> Result<HashMap<Position, Original>, ApplyError> {
    let consumer: BaseConsumer = config
        // The end of a partition ends the search there: what was not found is gone.
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| {
            ApplyError::Kafka(format!(
                "creating a consumer to read poison records again: {e}"
            ))
        })?;
    // Per partition, the offsets still to find, in order.
    let mut missing: BTreeMap<(String, i32), BTreeSet<i64>> = BTreeMap::new();
    for (topic, partition, offset) in wanted {
        missing
            .entry((topic.clone(), *partition))
            .or_default()
            .insert(*offset);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offsets) in &missing {
        if let Some(first) = offsets.first() {
            list.add_partition_offset(topic, *partition, Offset::Offset(*first))
                .map_err(|e| ApplyError::Kafka(format!("assigning {topic}:{partition}: {e}")))?;
        }
    }
    consumer.assign(&list).map_err(|e| {
        ApplyError::Kafka(format!(
            "assigning partitions to read poison records again: {e}"
        ))
    })?;
    let mut found = HashMap::new();
    let deadline = Instant::now() + timeout;
    while missing.values().any(|offsets| !offsets.is_empty()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ApplyError::Kafka(format!(
                "reading poison records again from Kafka took over {}s; the sink stops before passing them (check the broker, then restart)",
                timeout.as_secs()
            )));
        }
        let message = match consumer.poll(left.min(Duration::from_millis(200))) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                // Everything before a partition's position was delivered: an offset still
                // missing below it is gone.
                if let Ok(positions) = consumer.position() {
                    for ((topic, partition), offsets) in missing.iter_mut() {
                        if let Some(Offset::Offset(next)) = positions
                            .find_partition(topic, *partition)
                            .map(|p| p.offset())
                        {
                            offsets.retain(|o| *o >= next);
                        }
                    }
                }
                continue;
            }
            Some(Err(e)) => {
                return Err(ApplyError::Kafka(format!(
                "reading poison records again from Kafka: {e}; the sink stops before passing them"
            )))
            }
            Some(Ok(m)) => m,
        };
        let Some(offsets) = missing.get_mut(&(message.topic().to_string(), message.partition()))
        else {
            continue;
        };
        // Offsets before this one that were not seen are gone (compaction); the caller says so.
        let at = message.offset();
        offsets.retain(|o| *o > at);
        let position = (message.topic().to_string(), message.partition(), at);
        if wanted.contains(&position) {
            found.insert(position, Original::of(&message));
        }
    }
    Ok(found)
}
