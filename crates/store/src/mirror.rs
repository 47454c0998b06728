//! The audit log's Kafka mirror: publishes every record, as JSON keyed by its seq, to one
//! topic, in order, at least once.
//!
//! An outbox: the log in SQLite is the source of truth; a cursor per topic
//! (`audit_mirror_cursor`) holds the last seq the broker acknowledged. Each pass sends the
//! records after the cursor and moves it only over records acknowledged in an unbroken run,
//! so a crash (or a broker error) re-sends from the last acknowledged seq: consumers may see
//! a record twice, never miss one, and deduplicate by the seq key. Records go to partition 0
//! with one request in flight, so the topic's order is the chain's order (create the topic
//! with one partition: [`AuditMirror::ensure_topic`]). The messages carry each record's hash
//! and prev_hash, so a copy of the topic verifies independently of the SQLite file.

use std::future::Future;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::error::StoreError;
use crate::store::Store;

/// Records read from the store per pass.
const BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot create the Kafka producer for the audit mirror: {0}; check the mirror's client settings (bootstrap servers, security)")]
    Client(KafkaError),
    #[error("the broker did not acknowledge audit record {seq} on topic {topic}: {cause}; records up to {acked} are mirrored, the rest are re-sent on the next pass")]
    Delivery {
        topic: String,
        seq: u64,
        acked: u64,
        cause: KafkaError,
    },
    #[error("cannot create the audit mirror topic {topic}: {cause}; create it (one partition) by hand or grant CreateTopics")]
    CreateTopic { topic: String, cause: String },
    #[error("audit mirror: {0}")]
    Store(#[from] StoreError),
    #[error("audit mirror: cannot encode record {seq}: {cause}")]
    Encode { seq: u64, cause: serde_json::Error },
}

/// What a pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MirrorProgress {
    /// Records acknowledged in this pass.
    pub sent: u64,
    /// The cursor after the pass: every record up to it is on the topic.
    pub acked_seq: u64,
}

/// Publishes the audit log to a Kafka topic.
pub struct AuditMirror {
    producer: FutureProducer,
    client: ClientConfig,
    topic: String,
}

impl AuditMirror {
    /// A mirror to `topic` on the brokers at `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str, topic: &str) -> Result<Self, MirrorError> {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", bootstrap_servers);
        Self::with_client_config(client, topic)
    }

    /// A mirror with the caller's client settings (security protocol, SASL, TLS...); the
    /// delivery settings that keep the order are set here.
    pub fn with_client_config(client: ClientConfig, topic: &str) -> Result<Self, MirrorError> {
        let mut producer_config = client.clone();
        producer_config
            .set("acks", "all")
            // One request in flight: a retried request cannot overtake a later one.
            .set("max.in.flight.requests.per.connection", "1")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5");
        let producer = producer_config.create().map_err(MirrorError::Client)?;
        Ok(Self {
            producer,
            client,
            topic: topic.to_string(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Creates the topic with one partition (and `replication` replicas) unless it exists.
    pub async fn ensure_topic(&self, replication: i32) -> Result<(), MirrorError> {
        let admin: AdminClient<DefaultClientContext> =
            self.client.create().map_err(MirrorError::Client)?;
        let results = admin
            .create_topics(
                &[NewTopic::new(
                    &self.topic,
                    1,
                    TopicReplication::Fixed(replication),
                )],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .map_err(|e| MirrorError::CreateTopic {
                topic: self.topic.clone(),
                cause: e.to_string(),
            })?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(MirrorError::CreateTopic {
                        topic,
                        cause: code.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Sends every record after the cursor, in order, and moves the cursor over those the
    /// broker acknowledged. On a delivery error the cursor stays at the last record of the
    /// unbroken acknowledged run and the error is returned: the next pass re-sends from there.
    pub async fn sync(&self, store: &Store) -> Result<MirrorProgress, MirrorError> {
        let mut progress = MirrorProgress {
            sent: 0,
            acked_seq: store.mirror_cursor(&self.topic)?,
        };
        loop {
            let records = store.audit_records(Some(progress.acked_seq), BATCH)?;
            if records.is_empty() {
                return Ok(progress);
            }
            let mut pending: Vec<(u64, DeliveryFuture)> = Vec::with_capacity(records.len());
            let mut failure: Option<(u64, KafkaError)> = None;
            for record in &records {
                let payload = serde_json::to_vec(record).map_err(|cause| MirrorError::Encode {
                    seq: record.seq,
                    cause,
                })?;
                let key = record.seq.to_string();
                let message = FutureRecord::to(&self.topic)
                    .key(&key)
                    .payload(&payload)
                    .partition(0);
                match self.producer.send_result(message) {
                    Ok(delivery) => pending.push((record.seq, delivery)),
                    // A full local queue: send what is queued, the rest in the next round.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                        if !pending.is_empty() =>
                    {
                        break
                    }
                    Err((cause, _)) => {
                        failure = Some((record.seq, cause));
                        break;
                    }
                }
            }
            let start = progress.acked_seq;
            for (seq, delivery) in pending {
                let outcome = match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((cause, _))) => Err(cause),
                    Err(_canceled) => Err(KafkaError::Canceled),
                };
                match outcome {
                    Ok(()) if failure.is_none() => progress.acked_seq = seq,
                    Ok(()) => {}
                    Err(cause) => {
                        if failure.is_none() {
                            failure = Some((seq, cause));
                        }
                    }
                }
            }
            if progress.acked_seq > start {
                store.set_mirror_cursor(&self.topic, progress.acked_seq)?;
                progress.sent += progress.acked_seq - start;
            }
            if let Some((seq, cause)) = failure {
                return Err(MirrorError::Delivery {
                    topic: self.topic.clone(),
                    seq,
                    acked: progress.acked_seq,
                    cause,
                });
            }
        }
    }

    /// Runs [`Self::sync`] every `every` until `stop` completes; a failed pass is logged and
    /// retried on the next tick (the cursor keeps the place).
    pub async fn run(&self, store: &Store, every: Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {
                    match self.sync(store).await {
                        Ok(progress) if progress.sent > 0 => tracing::debug!(
                            topic = %self.topic, sent = progress.sent, acked_seq = progress.acked_seq,
                            "audit records mirrored"
                        ),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(topic = %self.topic, "{err}"),
                    }
                }
            }
        }
    }
}
