//! Dead letters: a record Vigil cannot process goes to the dead-letter topic with its original key,
//! value and headers, plus headers that say where it came from and why it failed. A dead letter
//! always fits in [`MAX_DEAD_LETTER_BYTES`]: an original too large for that is cut (its value
//! truncated, its headers dropped, the error text shortened), and headers state its full size and
//! SHA-256 — a failed delivery would stop the service, and again on every restart.

use sha2::{Digest, Sha256};

use crate::input::Input;
use crate::sink::Output;

/// Header: the topic the record was consumed from.
pub const SOURCE_TOPIC: &str = "vigil.dlq.source.topic";
/// Header: its partition (decimal).
pub const SOURCE_PARTITION: &str = "vigil.dlq.source.partition";
/// Header: its offset (decimal).
pub const SOURCE_OFFSET: &str = "vigil.dlq.source.offset";
/// Header: the processing stage that failed (`decode`, `featurise`, `score`, …).
pub const STAGE: &str = "vigil.dlq.stage";
/// Header: the error, for people.
pub const ERROR: &str = "vigil.dlq.error";
/// Header: the error's short stable kind (`bad-magic`, `truncated`, …), for machines.
pub const ERROR_KIND: &str = "vigil.dlq.error.kind";
/// Header: the service that dead-lettered the record.
pub const SERVICE: &str = "vigil.dlq.service";
/// Header: when it was dead-lettered (epoch ms, decimal).
pub const TIME: &str = "vigil.dlq.time";

/// Header: the original value's size in bytes, when the value was truncated.
pub const PAYLOAD_SIZE: &str = "vigil.dlq.payload.size";
/// Header: the original value's SHA-256 (hex), when the value was truncated.
pub const PAYLOAD_SHA256: &str = "vigil.dlq.payload.sha256";
/// Header: how many original headers were dropped to make room.
pub const HEADERS_DROPPED: &str = "vigil.dlq.headers.dropped";

/// Most bytes a dead letter takes (key, value and headers): under Kafka's default
/// `max.message.bytes` of a topic (1,048,588), with room for the record's own overhead.
pub const MAX_DEAD_LETTER_BYTES: usize = 1_000_000;

/// Longest error text kept.
const MAX_ERROR_BYTES: usize = 4096;

/// Why a record is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The stage that failed.
    pub stage: &'static str,
    /// A short stable kind.
    pub kind: &'static str,
    /// The error, for people (with its causes).
    pub error: String,
}

/// Builds the dead-letter record for `input`, cut to fit [`MAX_DEAD_LETTER_BYTES`].
pub fn dead_letter(dlq_topic: &str, service: &str, input: &Input, reason: &Reason, now_ms: i64) -> Output {
    let error = truncate_str(&reason.error, MAX_ERROR_BYTES);
    let mut headers = vec![
        (SOURCE_TOPIC.into(), input.topic.as_bytes().to_vec()),
        (SOURCE_PARTITION.into(), input.partition.to_string().into_bytes()),
        (SOURCE_OFFSET.into(), input.offset.to_string().into_bytes()),
        (STAGE.into(), reason.stage.as_bytes().to_vec()),
        (ERROR.into(), error.as_bytes().to_vec()),
        (ERROR_KIND.into(), reason.kind.as_bytes().to_vec()),
        (SERVICE.into(), service.as_bytes().to_vec()),
        (TIME.into(), now_ms.to_string().into_bytes()),
    ];
    let size = |h: &[(String, Vec<u8>)]| h.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
    // Room for the digest headers, should the value need cutting.
    let reserve = 256 + input.key.as_ref().map_or(0, |k| k.len().min(MAX_ERROR_BYTES));
    let mut room = MAX_DEAD_LETTER_BYTES.saturating_sub(size(&headers) + reserve);
    let original = size(&input.headers);
    if original <= room / 2 {
        headers.splice(0..0, input.headers.iter().cloned());
        room -= original;
    } else {
        headers.push((HEADERS_DROPPED.into(), input.headers.len().to_string().into_bytes()));
    }
    let key = input.key.as_ref().map(|k| k[..k.len().min(MAX_ERROR_BYTES)].to_vec());
    let value = input.payload.as_deref().unwrap_or_default();
    let payload = if value.len() <= room {
        value.to_vec()
    } else {
        headers.push((PAYLOAD_SIZE.into(), value.len().to_string().into_bytes()));
        headers.push((PAYLOAD_SHA256.into(), hex::encode(Sha256::digest(value)).into_bytes()));
        value[..room].to_vec()
    };
    Output { topic: dlq_topic.to_string(), key, payload, headers, timestamp: input.timestamp }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_original_and_adds_every_header() {
        let input = Input {
            topic: "fraud.transactions".into(),
            partition: 2,
            offset: 41,
            key: Some(b"acct-1".to_vec()),
            payload: Some(vec![0xde, 0xad]),
            headers: vec![("trace".into(), b"abc".to_vec())],
            timestamp: Some(5),
        };
        let reason = Reason { stage: "decode", kind: "bad-magic", error: "bad magic byte 0xde".into() };
        let out = dead_letter("vigil.dlq", "scorer", &input, &reason, 99);
        assert_eq!(out.topic, "vigil.dlq");
        assert_eq!(out.key.as_deref(), Some(&b"acct-1"[..]));
        assert_eq!(out.payload, vec![0xde, 0xad]);
        assert_eq!(out.timestamp, Some(5));
        let get =
            |k: &str| out.headers.iter().find(|(n, _)| n == k).map(|(_, v)| String::from_utf8_lossy(v).to_string());
        assert_eq!(get("trace").as_deref(), Some("abc"));
        assert_eq!(get(SOURCE_TOPIC).as_deref(), Some("fraud.transactions"));
        assert_eq!(get(SOURCE_PARTITION).as_deref(), Some("2"));
        assert_eq!(get(SOURCE_OFFSET).as_deref(), Some("41"));
        assert_eq!(get(STAGE).as_deref(), Some("decode"));
        assert_eq!(get(ERROR_KIND).as_deref(), Some("bad-magic"));
        assert_eq!(get(ERROR).as_deref(), Some("bad magic byte 0xde"));
        assert_eq!(get(SERVICE).as_deref(), Some("scorer"));
        assert_eq!(get(TIME).as_deref(), Some("99"));
        assert_eq!(get(PAYLOAD_SIZE), None, "nothing was cut");
    }

    /// A record at the topic's limit, with large headers and a long error, still makes a dead
    /// letter within the limit, which says what was cut.
    #[test]
    fn an_oversized_record_is_cut_to_fit_and_says_so() {
        let payload: Vec<u8> = (0..1_048_000u32).map(|i| (i % 251) as u8).collect();
        let input = Input {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            key: Some(vec![b'k'; 100]),
            payload: Some(payload.clone()),
            headers: vec![("big".into(), vec![0; 600_000])],
            timestamp: None,
        };
        let reason = Reason { stage: "decode", kind: "too-large", error: "é".repeat(100_000) };
        let out = dead_letter("dlq", "scorer", &input, &reason, 1);
        let total = out.payload.len()
            + out.key.as_ref().map_or(0, Vec::len)
            + out.headers.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
        assert!(total <= MAX_DEAD_LETTER_BYTES, "{total}");
        let get = |k: &str| out.headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get(PAYLOAD_SIZE), Some(b"1048000".to_vec()));
        assert_eq!(get(PAYLOAD_SHA256), Some(hex::encode(Sha256::digest(&payload)).into_bytes()));
        assert_eq!(get(HEADERS_DROPPED), Some(b"1".to_vec()));
        assert!(get("big").is_none());
        assert!(payload.starts_with(&out.payload) && out.payload.len() > 900_000);
        assert!(String::from_utf8(get(ERROR).unwrap()).unwrap().len() <= 4096);
    }
}
