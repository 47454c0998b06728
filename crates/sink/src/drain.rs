//! "Drain to position": wait until everything before given offsets is committed in the target.
//!
//! It reads the offsets table in the target, not a process's memory, so it answers for every
//! sink process of the pipeline (scale-out) and across restarts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::target::Target;
use crate::{ApplyError, PartitionKey};

/// What is still missing: per partition, (wanted next offset, committed next offset).
pub type Shortfall = BTreeMap<PartitionKey, (i64, Option<i64>)>;

/// The partitions whose committed next offset is below the wanted one (pure).
pub fn shortfall(
    wanted: &BTreeMap<PartitionKey, i64>,
    committed: &BTreeMap<PartitionKey, i64>,
) -> Shortfall {
    wanted
        .iter()
        .filter_map(|(key, want)| {
            let have = committed.get(key).copied();
            // Nothing to wait for on an empty partition (wanted 0).
            (*want > 0 && have.is_none_or(|h| h < *want)).then(|| (key.clone(), (*want, have)))
        })
        .collect()
}

/// Waits until every partition's committed next offset reaches the wanted one ("every record
/// with an offset below it is applied"), polling the target. Returns the shortfall at timeout.
pub async fn wait_for(
    target: &mut Target,
    pipeline: &str,
    wanted: &BTreeMap<PartitionKey, i64>,
    timeout: Duration,
) -> Result<Result<Duration, Shortfall>, ApplyError> {
    let started = Instant::now();
    loop {
        let committed = target.load_offsets(pipeline).await?;
        let missing = shortfall(wanted, &committed);
        if missing.is_empty() {
            return Ok(Ok(started.elapsed()));
        }
        if started.elapsed() >= timeout {
            return Ok(Err(missing));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The end offset (high watermark) of every partition of the pipeline's topics.
pub async fn end_offsets(
    pipeline: &crate::SinkPipeline,
) -> Result<BTreeMap<PartitionKey, i64>, ApplyError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut config = rdkafka::ClientConfig::new();
    for (k, v) in &pipeline.kafka.consumer {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &pipeline.kafka.bootstrap_servers)
        .set(
            "group.id",
            format!("lockstep-sink-{}-status", pipeline.name),
        )
        .set("enable.auto.commit", "false");
    let topics = pipeline.kafka.topics.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| ApplyError::Kafka(format!("creating a metadata client: {e}")))?;
        let timeout = Duration::from_secs(10);
        let mut ends = BTreeMap::new();
        for topic in topics {
            let metadata = consumer
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| ApplyError::Kafka(format!("metadata of {topic}: {e}")))?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len() as i32)
                .unwrap_or(0);
            if partitions == 0 {
                return Err(ApplyError::Kafka(format!(
                    "topic {topic} does not exist: check kafka.topics against the connector's topic.prefix"
                )));
            }
            for partition in 0..partitions {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, partition, timeout)
                    .map_err(|e| ApplyError::Kafka(format!("end offset of {topic}/{partition}: {e}")))?;
                ends.insert((topic.clone(), partition), high);
            }
        }
        Ok(ends)
    })
    .await
    .map_err(|e| ApplyError::Kafka(format!("the metadata task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        ("t".to_string(), p)
    }

    #[test]
    fn shortfall_lists_only_partitions_behind() {
        let wanted = BTreeMap::from([(key(0), 10), (key(1), 5), (key(2), 0), (key(3), 7)]);
        let committed = BTreeMap::from([(key(0), 10), (key(1), 4), (key(2), 0)]);
        let missing = shortfall(&wanted, &committed);
        assert_eq!(
            missing,
            BTreeMap::from([(key(1), (5, Some(4))), (key(3), (7, None))])
        );
        assert!(shortfall(
            &BTreeMap::from([(key(0), 3)]),
            &BTreeMap::from([(key(0), 9)])
        )
        .is_empty());
    }
}
