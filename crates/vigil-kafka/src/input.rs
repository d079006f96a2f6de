//! An owned copy of a consumed record, detached from the consumer so that batches can move between
//! tasks and threads.

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` for a tombstone).
    pub payload: Option<Vec<u8>>,
    /// Headers as (name, value); a header without a value has an empty one.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Record timestamp (epoch ms), when the broker has one.
    pub timestamp: Option<i64>,
}

impl Input {
    /// Copies a consumed message.
    pub fn from_message(m: &BorrowedMessage<'_>) -> Input {
        let headers = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
            .unwrap_or_default();
        Input {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: m.timestamp().to_millis(),
        }
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
}
