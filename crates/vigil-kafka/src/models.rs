//! The models topic: publishing checkpoints and registry transitions (key `<model>/<version>`), and
//! reading the compacted topic from the beginning, to its end or following it.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use vigil_events::{Codec, ModelCheckpoint};
use vigil_runtime::config::KafkaConfig;

use crate::{KafkaPlumbingError, client, now_ms};

/// One record of the models topic: a checkpoint, or a tombstone for a key.
#[derive(Debug, Clone)]
pub enum ModelRecord {
    /// A checkpoint or transition.
    Checkpoint(Box<ModelCheckpoint>),
    /// A deleted `<model>/<version>` key.
    Tombstone {
        /// Model.
        model: String,
        /// Version.
        version: i64,
    },
    /// A record that does not decode (reported, skipped).
    Undecodable {
        /// Offset.
        offset: i64,
        /// Why.
        error: String,
    },
}

/// Decodes one record of the models topic.
pub fn parse(codec: &Codec, key: Option<&[u8]>, payload: Option<&[u8]>, offset: i64) -> ModelRecord {
    match payload {
        Some(p) => match codec.decode_event::<ModelCheckpoint>(p) {
            Ok(cp) => ModelRecord::Checkpoint(Box::new(cp)),
            Err(e) => ModelRecord::Undecodable { offset, error: e.to_string() },
        },
        None => {
            let key = key.map(String::from_utf8_lossy).unwrap_or_default();
            match key.rsplit_once('/').and_then(|(m, v)| Some((m.to_string(), v.parse().ok()?))) {
                Some((model, version)) => ModelRecord::Tombstone { model, version },
                None => ModelRecord::Undecodable { offset, error: format!("tombstone with key `{key}`") },
            }
        }
    }
}

/// Deletes `<model>/<version>` from the compacted topic (a tombstone) and waits for the
/// acknowledgement.
pub async fn tombstone(
    producer: &FutureProducer<client::LogContext>,
    topic: &str,
    model: &str,
    version: i64,
) -> Result<(), KafkaPlumbingError> {
    let key = format!("{model}/{version}");
    producer
        .send(FutureRecord::<_, [u8]>::to(topic).key(key.as_bytes()), Duration::from_secs(30))
        .await
        .map_err(|(source, _)| KafkaPlumbingError::Produce { topic: topic.to_string(), source })?;
    Ok(())
}

/// Publishes a checkpoint (or transition) and waits for the acknowledgement.
pub async fn publish(
    producer: &FutureProducer<client::LogContext>,
    codec: &Codec,
    topic: &str,
    cp: &ModelCheckpoint,
) -> Result<(), KafkaPlumbingError> {
    publish_event(producer, codec, topic, &cp.key(), cp).await
}

/// Publishes one of Vigil's records under `key` and waits for the acknowledgement.
pub async fn publish_event<E: vigil_events::Event>(
    producer: &FutureProducer<client::LogContext>,
    codec: &Codec,
    topic: &str,
    key: &str,
    value: &E,
) -> Result<(), KafkaPlumbingError> {
    let payload = codec.encode_event(value).map_err(|e| KafkaPlumbingError::Delivery(e.to_string()))?;
    producer
        .send(FutureRecord::to(topic).key(key.as_bytes()).payload(&payload[..]), Duration::from_secs(30))
        .await
        .map_err(|(source, _)| KafkaPlumbingError::Produce { topic: topic.to_string(), source })?;
    Ok(())
}

/// A producer for the models topic (large messages allowed by the configuration).
pub fn producer(kafka: &KafkaConfig) -> Result<FutureProducer<client::LogContext>, KafkaPlumbingError> {
    client::producer_config(kafka, "models")
        .create_with_context(client::LogContext)
        .map_err(|source| KafkaPlumbingError::Client { what: "creating the models producer", source })
}

/// Reads every record of the (single-partition) models topic from the beginning to its current end.
pub fn read_all(kafka: &KafkaConfig, topic: &str, codec: &Codec) -> Result<Vec<ModelRecord>, KafkaPlumbingError> {
    read_to_end(kafka, topic, codec).map(|(records, _)| records)
}

/// [`read_all`], with the offset after the end it read to (where a follower goes on from).
/// Transactional writers leave control records on the topic that are never delivered, so the end
/// is the consumer's position reaching the high watermark, not a record's offset. Fails when the
/// end is not reached within 60 s: a read (see [`KafkaPlumbingError::is_failed_read`]) when the
/// cluster does not answer then, else a transaction left open.
pub fn read_to_end(
    kafka: &KafkaConfig,
    topic: &str,
    codec: &Codec,
) -> Result<(Vec<ModelRecord>, i64), KafkaPlumbingError> {
    let consumer: BaseConsumer<client::LogContext> =
        client::large_message_consumer_config(kafka, "models-reader", &format!("vigil-models-{}", now_ms()))
            .create_with_context(client::LogContext)
            .map_err(|source| KafkaPlumbingError::Client { what: "creating the models reader", source })?;
    let (low, high) = client::watermarks(&consumer, topic, 0, Duration::from_secs(30))
        .map_err(|source| KafkaPlumbingError::Client { what: "reading the models topic's watermarks", source })?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|source| KafkaPlumbingError::Client { what: "reading the models topic's metadata", source })?;
    if let Some(t) = md.topics().iter().find(|t| t.name() == topic)
        && t.partitions().len() > 1
    {
        // Readers follow partition 0 only: transitions must be read in one order by everyone.
        return Err(KafkaPlumbingError::Delivery(format!(
            "the models topic {topic} has {} partitions; it must have one (`vigil topics create` makes it so)",
            t.partitions().len()
        )));
    }
    let mut out = Vec::new();
    if high <= low {
        return Ok((out, high));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|source| KafkaPlumbingError::Client { what: "assigning the models topic", source })?;
    consumer
        .assign(&tpl)
        .map_err(|source| KafkaPlumbingError::Client { what: "assigning the models topic", source })?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(parse(codec, m.key(), m.payload(), m.offset())),
            Some(Err(e)) => tracing::warn!(error = %e, "reading the models topic"),
            None => {}
        }
        if position(&consumer, topic).is_some_and(|p| p >= high) {
            return Ok((out, high));
        }
        if std::time::Instant::now() > deadline {
            // A cluster gone away during the read is a failed read (tried again by a caller that
            // waits for the cluster); one that answers while the end stays out of reach is stuck.
            if let Err(source) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                return Err(KafkaPlumbingError::Client { what: "reading the models topic", source });
            }
            return Err(KafkaPlumbingError::Delivery(format!(
                "the models topic did not reach offset {high} within 60 s (a transaction left open?)"
            )));
        }
    }
}

/// Where a consumer of the models topic is: the offset of the next record it will deliver
/// (control records of transactions passed over).
pub fn position<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(consumer: &C, topic: &str) -> Option<i64> {
    let tpl = consumer.position().ok()?;
    match tpl.find_partition(topic, 0)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// A consumer that follows the models topic from the beginning (no group: every instance sees
/// every record).
pub fn follower(
    kafka: &KafkaConfig,
    topic: &str,
    role: &str,
) -> Result<StreamConsumer<client::LogContext>, KafkaPlumbingError> {
    let consumer: StreamConsumer<client::LogContext> =
        client::large_message_consumer_config(kafka, role, &format!("vigil-{role}-{}", now_ms()))
            .create_with_context(client::LogContext)
            .map_err(|source| KafkaPlumbingError::Client { what: "creating the models follower", source })?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|source| KafkaPlumbingError::Client { what: "assigning the models topic", source })?;
    consumer
        .assign(&tpl)
        .map_err(|source| KafkaPlumbingError::Client { what: "assigning the models topic", source })?;
    Ok(consumer)
}

/// A blocking follower of the models topic from `offset` (for services whose loop runs on a blocking
/// thread and who know how far they have already read).
pub fn follower_from(
    kafka: &KafkaConfig,
    topic: &str,
    role: &str,
    offset: i64,
) -> Result<BaseConsumer<client::LogContext>, KafkaPlumbingError> {
    let consumer: BaseConsumer<client::LogContext> =
        client::large_message_consumer_config(kafka, role, &format!("vigil-{role}-{}", now_ms()))
            .create_with_context(client::LogContext)
            .map_err(|source| KafkaPlumbingError::Client { what: "creating the models follower", source })?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .map_err(|source| KafkaPlumbingError::Client { what: "assigning the models topic", source })?;
    consumer
        .assign(&tpl)
        .map_err(|source| KafkaPlumbingError::Client { what: "assigning the models topic", source })?;
    Ok(consumer)
}

/// The next record of a follower, with its offset.
pub async fn next_with_offset(
    consumer: &StreamConsumer<client::LogContext>,
    codec: &Codec,
) -> Result<(i64, ModelRecord), KafkaPlumbingError> {
    let m = consumer
        .recv()
        .await
        .map_err(|source| KafkaPlumbingError::Client { what: "following the models topic", source })?;
    Ok((m.offset(), parse(codec, m.key(), m.payload(), m.offset())))
}

/// The high watermark of the models topic (to know when a follower has caught up).
pub fn end_offset(consumer: &StreamConsumer<client::LogContext>, topic: &str) -> Result<i64, KafkaPlumbingError> {
    client::watermarks(consumer, topic, 0, Duration::from_secs(30))
        .map(|(_, high)| high)
        .map_err(|source| KafkaPlumbingError::Client { what: "reading the models topic's watermarks", source })
}
