//! Bad input through the consume loop: every malformed record lands in the dead-letter topic with its
//! origin and the reason, the good ones are processed, and the loop carries on and commits.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vigil_e2e::*;
use vigil_events::{Codec, Transaction};
use vigil_kafka::dlq::{self, Reason};
use vigil_kafka::pipeline::{self, Counters, Handler, HandlerError, Outcome, PipelineConfig};
use vigil_kafka::{Input, Output};

/// Decodes transactions and forwards them re-encoded; anything undecodable is a dead letter.
struct Validate {
    codec: Codec,
    out: String,
}

impl Handler for Validate {
    async fn handle(&mut self, batch: &[Input]) -> Result<Vec<Outcome>, HandlerError> {
        Ok(batch
            .iter()
            .map(|input| {
                let Some(payload) = input.payload.as_deref() else {
                    return Outcome::DeadLetter(Reason {
                        stage: "decode",
                        kind: "tombstone",
                        error: "no value".into(),
                    });
                };
                match self.codec.decode_event::<Transaction>(payload) {
                    Ok(t) => Outcome::Produce(vec![Output {
                        topic: self.out.clone(),
                        key: input.key.clone(),
                        payload: self.codec.encode_event(&t).unwrap(),
                        ..Output::default()
                    }]),
                    Err(e) => Outcome::DeadLetter(Reason { stage: "decode", kind: e.kind(), error: e.to_string() }),
                }
            })
            .collect())
    }
}

fn tx(i: usize) -> Transaction {
    Transaction {
        event_id: format!("ok-{i}"),
        account_id: format!("acct-{i}"),
        card_id: "c".into(),
        event_time: 1_700_000_000_000,
        amount: 9.99,
        currency: "EUR".into(),
        merchant_id: "m".into(),
        merchant_category: "5411".into(),
        channel: "pos".into(),
        country: "DE".into(),
        card_present: true,
        account_age_days: 100,
        device_id: None,
        distance_from_home_km: None,
    }
}

#[tokio::test]
async fn malformed_records_are_dead_lettered_with_their_origin_and_the_loop_carries_on() {
    let (input, output, dlq_topic) = (unique("in"), unique("out"), unique("dlq"));
    create_topics(&[&input, &output, &dlq_topic], 1).await;
    let codec = Codec::new();
    let good = codec.encode_event(&tx(0)).unwrap();
    let mut unknown_fp = good.clone();
    unknown_fp[2..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let mut unknown_id = vec![0u8, 0, 0, 0x30, 0x39];
    unknown_id.extend_from_slice(&good[10..]);
    let cases: Vec<(Option<Vec<u8>>, Option<&str>)> = vec![
        (Some(codec.encode_event(&tx(1)).unwrap()), None),
        (Some(b"{\"event_id\": \"json-instead-of-avro\"}".to_vec()), Some("bad-magic")),
        (Some(codec.encode_event(&tx(2)).unwrap()), None),
        (Some(good[..good.len() - 4].to_vec()), Some("truncated")),
        (Some(unknown_fp), Some("unknown-fingerprint")),
        (Some(unknown_id), Some("unknown-schema-id")),
        (Some(Vec::new()), Some("truncated")),
        (
            Some(
                codec
                    .encode_event(&vigil_events::Label {
                        event_id: "l".into(),
                        label: 1.0,
                        label_time: 0,
                        source: None,
                    })
                    .unwrap(),
            ),
            Some("schema-mismatch"),
        ),
        (Some(codec.encode_event(&tx(3)).unwrap()), None),
    ];
    let p = producer();
    for (i, (payload, _)) in cases.iter().enumerate() {
        produce(&p, &input, Some(format!("key-{i}").as_bytes()), payload.as_deref().unwrap()).await;
    }
    // A record written by kcat, an independent client: plain text.
    let kcat = std::process::Command::new("kcat")
        .args(["-b", &bootstrap(), "-P", "-t", &input, "-K", ":"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/setup.sh");
    {
        use std::io::Write;
        let mut k = kcat;
        k.stdin.take().unwrap().write_all(b"key-kcat:hello from kcat\n").unwrap();
        assert!(k.wait().unwrap().success());
    }
    let total = cases.len() + 1;
    let expected_good = cases.iter().filter(|(_, k)| k.is_none()).count();

    let group = unique("group");
    let mut cfg = PipelineConfig::new("it-validate", &group, vec![input.clone()], &dlq_topic);
    cfg.max_batch = 3; // several batches, so the loop demonstrably carries on after bad ones
    let shutdown = CancellationToken::new();
    let counters = Arc::new(Counters::default());
    let kafka = kafka_config();
    let started = std::time::Instant::now();
    let task = {
        let (shutdown, counters, out) = (shutdown.clone(), counters.clone(), output.clone());
        tokio::spawn(async move {
            let mut h = Validate { codec: Codec::new(), out };
            pipeline::run(&kafka, &cfg, &mut h, counters, shutdown).await
        })
    };

    let forwarded = consume_exactly(&output, expected_good, Duration::from_secs(60), Duration::from_secs(2)).await;
    let dead =
        consume_exactly(&dlq_topic, total - expected_good, Duration::from_secs(60), Duration::from_secs(2)).await;
    shutdown.cancel();
    let summary = task.await.unwrap().unwrap();
    assert!(summary.drained, "the loop must drain on shutdown");
    assert_eq!(summary.consumed as usize, total);
    assert_eq!(summary.dead_lettered as usize, total - expected_good);
    // Where the loop's time went: each part was measured, and together they fit in its life.
    let ns = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let parts = [ns(&counters.waiting_ns), ns(&counters.handling_ns), ns(&counters.enqueueing_ns)];
    assert!(parts.iter().all(|&p| p > 0), "waiting, handling, enqueueing (ns): {parts:?}");
    assert!(parts.iter().sum::<u64>() <= started.elapsed().as_nanos() as u64, "{parts:?} outlast the loop");

    // Conservation: each input is exactly one output or one dead letter.
    let out_ids: Vec<String> = forwarded
        .iter()
        .map(|m| codec.decode_event::<Transaction>(m.payload.as_deref().unwrap()).unwrap().event_id)
        .collect();
    assert_eq!(out_ids, vec!["ok-1", "ok-2", "ok-3"]);
    let mut dead_offsets = Vec::new();
    for m in &dead {
        let h = |name: &str| {
            String::from_utf8(m.header(name).unwrap_or_else(|| panic!("header {name} missing")).to_vec()).unwrap()
        };
        assert_eq!(h(dlq::SOURCE_TOPIC), input);
        assert_eq!(h(dlq::SOURCE_PARTITION), "0");
        assert_eq!(h(dlq::STAGE), "decode");
        assert_eq!(h(dlq::SERVICE), "it-validate");
        assert!(!h(dlq::ERROR).is_empty());
        assert!(h(dlq::TIME).parse::<i64>().unwrap() > 0);
        let offset: usize = h(dlq::SOURCE_OFFSET).parse().unwrap();
        dead_offsets.push(offset);
        if offset < cases.len() {
            let (payload, kind) = &cases[offset];
            assert_eq!(Some(h(dlq::ERROR_KIND).as_str()), *kind, "offset {offset}: {}", h(dlq::ERROR));
            assert_eq!(m.payload.as_deref().unwrap_or(&[]), payload.as_deref().unwrap(), "original bytes kept");
            assert_eq!(m.key.as_deref(), Some(format!("key-{offset}").as_bytes()), "original key kept");
        } else {
            assert_eq!(h(dlq::ERROR_KIND), "bad-magic");
            assert_eq!(m.payload.as_deref(), Some(&b"hello from kcat"[..]));
            assert_eq!(m.key.as_deref(), Some(&b"key-kcat"[..]));
        }
    }
    dead_offsets.sort();
    assert_eq!(dead_offsets, vec![1, 3, 4, 5, 6, 7, 9]);

    // Everything consumed was committed.
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).set("group.id", &group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&input, 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    assert_eq!(committed.elements()[0].offset(), Offset::Offset(total as i64));
    delete_topics(&[&input, &output, &dlq_topic]).await;
}

/// Members of consumer group `group`, as the broker sees them; `None` while it cannot say (a
/// broker just started answers "coordinator load in progress" for a moment).
fn group_members(group: &str) -> Option<usize> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap()).create().unwrap();
    let list = c.fetch_group_list(Some(group), Duration::from_secs(10)).ok()?;
    Some(list.groups().iter().map(|g| g.members().len()).sum())
}

/// Waits (at most 30 s) until `group` has `n` members; returns whether it did.
async fn members_become(group: &str, n: usize) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if group_members(group) == Some(n) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn a_loop_dropped_mid_way_leaves_its_group() {
    // At-least-once the loop fetches on a task of its own; dropping the loop (its future, not a
    // shutdown) must stop that task too, or a consumer keeps polling, and holding partitions, for ever.
    let (input, output, dlq_topic) = (unique("in"), unique("out"), unique("dlq"));
    create_topics(&[&input, &output, &dlq_topic], 1).await;
    let group = unique("group");
    let cfg = PipelineConfig::new("it-dropped", &group, vec![input.clone()], &dlq_topic);
    let kafka = kafka_config();
    let out = output.clone();
    let task = tokio::spawn(async move {
        let mut h = Validate { codec: Codec::new(), out };
        pipeline::run(&kafka, &cfg, &mut h, Arc::new(Counters::default()), CancellationToken::new()).await
    });
    assert!(members_become(&group, 1).await, "the loop never joined its group");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(members_become(&group, 0).await, "the dropped loop's consumer is still in the group");
    delete_topics(&[&input, &output, &dlq_topic]).await;
}
