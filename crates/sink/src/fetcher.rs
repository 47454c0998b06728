//! The sink's fetcher: a thread that owns the Kafka consumer and the record decoder, so the
//! next batch is read and decoded while the current one is planned and in the target's
//! transaction. On two cores this is the difference between the sink and PostgreSQL taking
//! turns and both working at once.
//!
//! The runner stays the only place that decides offsets. It hands the fetcher an assignment
//! (partitions and the offset each resumes at) with a new *generation*; every batch carries
//! the generation it was read under, and the runner drops batches of an older one. A block,
//! a release, a pause or a failed batch therefore re-seeks the partitions exactly where the
//! target's committed offsets say, whatever the fetcher had read ahead.

use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lockstep_debezium::{Decoder, JsonConverterDecoder, Record};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc as async_mpsc;

use crate::dlq::Original;
use crate::runner::Polled;
use crate::ApplyError;

/// How long the thread blocks in one consumer poll: the delay before it sees a new assignment.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// When the fetcher seals a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    /// From the batch's first record.
    pub linger: Duration,
}

/// A partition and where it resumes: `None` is the beginning of the partition.
pub(crate) type Resume = (String, i32, Option<i64>);

/// Records read and decoded under one assignment.
pub(crate) struct FetchedBatch {
    pub generation: u64,
    pub polled: Vec<Polled>,
    /// One per polled record, same order: the decoded record or why it could not be decoded.
    pub decoded: Vec<Result<Record, String>>,
    pub bytes: usize,
    /// Thread time spent decoding (overlapped with the runner's work).
    pub decode: Duration,
}

type Delivery = Result<FetchedBatch, (u64, ApplyError)>;

enum Command {
    Assign {
        generation: u64,
        partitions: Vec<Resume>,
    },
}

pub(crate) struct Fetcher {
    commands: Option<mpsc::Sender<Command>>,
    batches: async_mpsc::Receiver<Delivery>,
    generation: u64,
    thread: Option<JoinHandle<()>>,
}

impl Fetcher {
    /// Starts the thread; it reads nothing until the first [`Fetcher::assign`].
    pub fn spawn(
        consumer: BaseConsumer,
        limits: BatchLimits,
        pipeline: &str,
    ) -> Result<Self, ApplyError> {
        let (commands, command_rx) = mpsc::channel();
        // One batch ready ahead of the one being read: bounded memory, and enough to keep the
        // runner from waiting as long as reading and decoding keep up with the target.
        let (batch_tx, batches) = async_mpsc::channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("sink-fetch-{pipeline}"))
            .spawn(move || {
                Worker {
                    consumer,
                    decoder: JsonConverterDecoder::new(),
                    last_topic: None,
                    limits,
                    commands: command_rx,
                    batches: batch_tx,
                }
                .run()
            })
            .map_err(|e| ApplyError::Kafka(format!("starting the fetch thread: {e}")))?;
        Ok(Self {
            commands: Some(commands),
            batches,
            generation: 0,
            thread: Some(thread),
        })
    }

    /// Reads these partitions from these offsets from now on; whatever was read before is
    /// dropped.
    pub fn assign(&mut self, partitions: Vec<Resume>) -> Result<(), ApplyError> {
        self.generation += 1;
        let command = Command::Assign {
            generation: self.generation,
            partitions,
        };
        self.commands
            .as_ref()
            .and_then(|c| c.send(command).ok())
            .ok_or_else(|| ApplyError::Kafka("the fetch thread has stopped".into()))
    }

    /// The assignment batches are read under now (see [`FetchedBatch::generation`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The next batch of the current assignment, or `None` when none is sealed within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<FetchedBatch>, ApplyError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.batches.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => {
                    return Err(ApplyError::Kafka(
                        "the fetch thread has stopped; restart the sink".into(),
                    ))
                }
                Ok(Some(Ok(batch))) if batch.generation == self.generation => {
                    return Ok(Some(batch))
                }
                Ok(Some(Err((generation, error)))) if generation == self.generation => {
                    return Err(error)
                }
                // Read under an assignment that has since been replaced.
                Ok(Some(_)) => continue,
            }
        }
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        // Closing the command channel stops the thread within one poll slice.
        self.commands.take();
        self.batches.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    consumer: BaseConsumer,
    decoder: JsonConverterDecoder,
    /// The topic of the last record, shared by the records after it of the same topic.
    last_topic: Option<std::sync::Arc<str>>,
    limits: BatchLimits,
    commands: mpsc::Receiver<Command>,
    batches: async_mpsc::Sender<Delivery>,
}

/// The batch being read.
struct Open {
    polled: Vec<Polled>,
    decoded: Vec<Result<Record, String>>,
    bytes: usize,
    decode: Duration,
    deadline: Option<Instant>,
}

impl Open {
    fn new() -> Self {
        Self {
            polled: Vec::new(),
            decoded: Vec::new(),
            bytes: 0,
            decode: Duration::ZERO,
            deadline: None,
        }
    }

    fn seal(&mut self, generation: u64) -> FetchedBatch {
        // The next batch is likely the size of this one: growing a vector of decoded records
        // (several hundred bytes each) a push at a time copies them over and over.
        let next = Open {
            polled: Vec::with_capacity(self.polled.len()),
            decoded: Vec::with_capacity(self.decoded.len()),
            ..Open::new()
        };
        let open = std::mem::replace(self, next);
        FetchedBatch {
            generation,
            polled: open.polled,
            decoded: open.decoded,
            bytes: open.bytes,
            decode: open.decode,
        }
    }
}

enum Next {
    Go,
    Stop,
}

impl Worker {
    fn run(mut self) {
        // 0: nothing assigned yet, or reading stopped after an error until the next assignment.
        let mut generation = 0u64;
        let mut reading = false;
        let mut open = Open::new();
        let mut ready: Option<Delivery> = None;
        loop {
            // An idle thread blocks on the command channel; a busy one only looks at it.
            let command = if reading || ready.is_some() {
                match self.commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match self.commands.recv_timeout(Duration::from_millis(200)) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            if let Some(Command::Assign {
                generation: g,
                partitions,
            }) = command
            {
                generation = g;
                open = Open::new();
                ready = None;
                match self.assign(&partitions) {
                    Ok(()) => reading = !partitions.is_empty(),
                    Err(e) => {
                        reading = false;
                        ready = Some(Err((generation, e)));
                    }
                }
                continue;
            }
            if let Some(delivery) = ready.take() {
                match self.batches.try_send(delivery) {
                    Ok(()) => {}
                    Err(async_mpsc::error::TrySendError::Full(delivery)) => {
                        ready = Some(delivery);
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(async_mpsc::error::TrySendError::Closed(_)) => return,
                }
                continue;
            }
            if !reading {
                continue;
            }
            if let Next::Stop = self.read(generation, &mut open, &mut ready, &mut reading) {
                return;
            }
        }
    }

    fn assign(&self, partitions: &[Resume]) -> Result<(), ApplyError> {
        let mut list = TopicPartitionList::new();
        for (topic, partition, next) in partitions {
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            list.add_partition_offset(topic, *partition, offset)
                .map_err(|e| ApplyError::Kafka(format!("assigning {topic}:{partition}: {e}")))?;
        }
        self.consumer
            .assign(&list)
            .map_err(|e| ApplyError::Kafka(format!("assigning partitions: {e}")))
    }

    /// Polls once (a short slice) and seals the open batch when it is full or has lingered.
    fn read(
        &mut self,
        generation: u64,
        open: &mut Open,
        ready: &mut Option<Delivery>,
        reading: &mut bool,
    ) -> Next {
        let now = Instant::now();
        if let Some(deadline) = open.deadline {
            if now >= deadline {
                *ready = Some(Ok(open.seal(generation)));
                return Next::Go;
            }
        }
        let slice = open.deadline.map_or(POLL_SLICE, |d| {
            d.saturating_duration_since(now).min(POLL_SLICE)
        });
        match self.consumer.poll(slice) {
            None => {}
            Some(Err(e)) => {
                // Deliver what was read before the error, then the error; read nothing more
                // until the runner re-assigns from the target's offsets.
                *reading = false;
                let error = ApplyError::Kafka(format!(
                    "{e}; if the offset is out of range, records were deleted by retention before the sink applied them and the table needs a new snapshot"
                ));
                if open.polled.is_empty() {
                    *ready = Some(Err((generation, error)));
                } else {
                    let batch = open.seal(generation);
                    if self.batches.blocking_send(Ok(batch)).is_err() {
                        return Next::Stop;
                    }
                    *ready = Some(Err((generation, error)));
                }
            }
            Some(Ok(m)) => {
                let decoding = Instant::now();
                let decoded = self
                    .decoder
                    .decode(m.key(), m.payload())
                    .map_err(|e| e.to_string());
                // A copy of the record only when it cannot be decoded (it goes to the
                // dead-letter topic as it is); copying every record, and reading its headers,
                // was a tenth of the sink's CPU.
                let original = decoded.is_err().then(|| Original::of(&m));
                let topic = match &self.last_topic {
                    Some(topic) if **topic == *m.topic() => std::sync::Arc::clone(topic),
                    _ => {
                        let topic: std::sync::Arc<str> = std::sync::Arc::from(m.topic());
                        self.last_topic = Some(std::sync::Arc::clone(&topic));
                        topic
                    }
                };
                let polled = Polled {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    bytes: m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len),
                    original,
                };
                open.decode += decoding.elapsed();
                open.bytes += polled.bytes;
                open.deadline.get_or_insert(now + self.limits.linger);
                open.polled.push(polled);
                open.decoded.push(decoded);
                if open.polled.len() >= self.limits.max_rows || open.bytes >= self.limits.max_bytes
                {
                    *ready = Some(Ok(open.seal(generation)));
                }
            }
        }
        Next::Go
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(generation: u64, offset: i64) -> Delivery {
        Ok(FetchedBatch {
            generation,
            polled: vec![Polled {
                topic: "t".into(),
                partition: 0,
                offset,
                bytes: 0,
                original: None,
            }],
            decoded: vec![Ok(Record::Tombstone { key: None })],
            bytes: 0,
            decode: Duration::ZERO,
        })
    }

    /// The rule the runner relies on instead of filtering held partitions itself: after an
    /// assignment, nothing read under an earlier one (batch or error) reaches it.
    #[tokio::test]
    async fn batches_and_errors_of_an_older_assignment_are_dropped() {
        let (tx, batches) = async_mpsc::channel(8);
        let mut fetcher = Fetcher {
            commands: None,
            batches,
            generation: 2,
            thread: None,
        };
        tx.send(batch(1, 10)).await.expect("send");
        tx.send(Err((1, ApplyError::Kafka("old".into()))))
            .await
            .expect("send");
        tx.send(batch(2, 3)).await.expect("send");
        let got = fetcher
            .next(Duration::from_secs(1))
            .await
            .expect("no error of generation 1")
            .expect("the generation-2 batch");
        assert_eq!(got.generation, 2);
        assert_eq!(got.polled[0].offset, 3);

        tx.send(Err((2, ApplyError::Kafka("current".into()))))
            .await
            .expect("send");
        assert!(fetcher.next(Duration::from_secs(1)).await.is_err());
        tx.send(batch(1, 11)).await.expect("send");
        assert!(
            fetcher
                .next(Duration::from_millis(50))
                .await
                .expect("no error")
                .is_none(),
            "a late batch of generation 1 is not delivered"
        );
    }
}
