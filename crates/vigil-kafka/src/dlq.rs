//! Dead letters: a record Vigil cannot process goes to the dead-letter topic with its original key,
//! value and headers, plus headers that say where it came from and why it failed.

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

/// Builds the dead-letter record for `input`.
pub fn dead_letter(dlq_topic: &str, service: &str, input: &Input, reason: &Reason, now_ms: i64) -> Output {
    let mut headers = input.headers.clone();
    headers.push((SOURCE_TOPIC.into(), input.topic.as_bytes().to_vec()));
    headers.push((SOURCE_PARTITION.into(), input.partition.to_string().into_bytes()));
    headers.push((SOURCE_OFFSET.into(), input.offset.to_string().into_bytes()));
    headers.push((STAGE.into(), reason.stage.as_bytes().to_vec()));
    headers.push((ERROR.into(), reason.error.as_bytes().to_vec()));
    headers.push((ERROR_KIND.into(), reason.kind.as_bytes().to_vec()));
    headers.push((SERVICE.into(), service.as_bytes().to_vec()));
    headers.push((TIME.into(), now_ms.to_string().into_bytes()));
    Output {
        topic: dlq_topic.to_string(),
        key: input.key.clone(),
        payload: input.payload.clone().unwrap_or_default(),
        headers,
        timestamp: input.timestamp,
    }
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
    }
}
