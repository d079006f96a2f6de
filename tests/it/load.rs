//! The load generator against the real broker: its schedule, its reproducibility, its labels and its
//! drift, checked on the records it produced.

use std::collections::HashMap;
use std::time::Duration;

use vigil_e2e::*;
use vigil_events::{Codec, Label, Transaction};

const T: Duration = Duration::from_secs(90);

fn load(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(bin("vigil-load"))
        .args(args)
        .env("VIGIL_KAFKA__BOOTSTRAP_SERVERS", bootstrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "vigil-load {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scheduled_us(m: &vigil_kafka::Input) -> i64 {
    std::str::from_utf8(m.header("vigil.load.scheduled.us").unwrap()).unwrap().parse().unwrap()
}

fn index(event_id: &str) -> usize {
    event_id.rsplit('-').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_fixed_rate_run_sends_the_requested_count_on_schedule_and_is_reproducible() {
    let (a, b) = (unique("gen-a"), unique("gen-b"));
    create_topics(&[&a, &b], 1).await;
    let args = |t: &str| {
        ["fraud", "--topic", t, "--labels-topic", "none", "--rate", "4000", "--events", "3000", "--seed", "9"]
            .map(String::from)
    };
    let sa = load(&args(&a).iter().map(String::as_str).collect::<Vec<_>>());
    let sb = load(&args(&b).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(sa["events"], 3000);
    let ra = consume_exactly(&a, 3000, T, Duration::from_secs(2)).await;
    let rb = consume_exactly(&b, 3000, T, Duration::from_secs(2)).await;
    // Same seed, same records, in the same order.
    assert!(ra.iter().zip(&rb).all(|(x, y)| x.payload == y.payload && x.key == y.key), "seeded runs differ");
    assert_eq!(sa["positives"], sb["positives"]);
    // Open loop: record i is due exactly i / rate after the first.
    let t0 = scheduled_us(&ra[0]);
    for (i, m) in ra.iter().enumerate() {
        assert_eq!(scheduled_us(m) - t0, (i as i64 * 1_000_000) / 4000, "record {i} off schedule");
    }
    // A time bound: 1.5 s at 2,000/s is 3,000 records.
    let c = unique("gen-c");
    create_topics(&[&c], 1).await;
    let sc = load(&["fraud", "--topic", &c, "--labels-topic", "none", "--rate", "2000", "--duration", "1.5"]);
    assert_eq!(sc["events"], 3000);
    consume_exactly(&c, 3000, T, Duration::from_secs(2)).await;
    delete_topics(&[&a, &b, &c]).await;
}

#[tokio::test]
async fn labels_refer_to_produced_events_with_the_configured_delays() {
    let (tx, labels) = (unique("gen-tx"), unique("gen-labels"));
    create_topics(&[&tx, &labels], 1).await;
    let n = 4000;
    let s = load(&[
        "fraud",
        "--topic",
        &tx,
        "--labels-topic",
        &labels,
        "--rate",
        "8000",
        "--events",
        &n.to_string(),
        "--fraud-rate",
        "0.05",
        "--label-fast-share",
        "0.8",
        "--label-fast-mean-ms",
        "100",
        "--label-slow-share",
        "0.15",
        "--label-slow-min-ms",
        "600",
        "--label-slow-max-ms",
        "1200",
        "--label-grace",
        "5",
    ]);
    let sent = s["labels"].as_u64().unwrap() as usize;
    assert_eq!(s["labels_not_sent"], 0, "every label falls due within the grace period");
    let events = consume_exactly(&tx, n, T, Duration::from_secs(2)).await;
    let got = consume_exactly(&labels, sent, T, Duration::from_secs(2)).await;
    let codec = Codec::new();
    let produced: HashMap<String, (i64, Transaction)> = events
        .iter()
        .map(|m| {
            let t: Transaction = codec.decode_event(m.payload.as_deref().unwrap()).unwrap();
            (t.event_id.clone(), (scheduled_us(m), t))
        })
        .collect();
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    let mut positives = 0;
    for m in &got {
        let l: Label = codec.decode_event(m.payload.as_deref().unwrap()).unwrap();
        let (at, _) = produced.get(&l.event_id).unwrap_or_else(|| panic!("label for unknown event {}", l.event_id));
        assert_eq!(m.key.as_deref(), Some(l.event_id.as_bytes()), "labels are keyed by event id");
        let delay_ms = (scheduled_us(m) - at) as f64 / 1000.0;
        assert!(delay_ms >= 0.0);
        if delay_ms < 600.0 {
            fast.push(delay_ms)
        } else {
            slow.push(delay_ms)
        }
        positives += usize::from(l.label == 1.0);
        assert_eq!(l.source.as_deref(), Some(if l.label == 1.0 { "chargeback" } else { "settled" }));
    }
    let share = |k: usize| k as f64 / n as f64;
    // Never: 5 %; fast: 80 %, exponential with mean 100 ms (exp(-6) of them, 0.2 %, beyond 600 ms);
    // slow: 15 %, uniform in [600, 1200] ms.
    assert!((share(got.len()) - 0.95).abs() < 0.02, "labelled share {}", share(got.len()));
    assert!((share(fast.len()) - 0.8).abs() < 0.03, "fast share {}", share(fast.len()));
    let fast_mean = fast.iter().sum::<f64>() / fast.len() as f64;
    assert!((fast_mean - 100.0).abs() < 8.0, "fast mean {fast_mean} ms");
    let uniform: Vec<f64> = slow.iter().copied().filter(|d| *d <= 1200.0).collect();
    assert!((share(uniform.len()) - 0.15).abs() < 0.02, "slow share {}", share(uniform.len()));
    let slow_mean = uniform.iter().sum::<f64>() / uniform.len() as f64;
    assert!((slow_mean - 900.0).abs() < 30.0, "slow mean {slow_mean} ms");
    assert!(share(slow.len() - uniform.len()) < 0.01, "too many delays beyond 1200 ms");
    assert!(positives > 100, "fraud labels present: {positives}");
    delete_topics(&[&tx, &labels]).await;
}

#[tokio::test]
async fn injected_drift_shows_in_the_produced_records_at_its_index() {
    let topic = unique("gen-drift");
    create_topics(&[&topic], 1).await;
    load(&[
        "fraud",
        "--topic",
        &topic,
        "--labels-topic",
        "none",
        "--rate",
        "0",
        "--events",
        "8000",
        "--drift",
        "amounts:3,at=4000",
        "--drift",
        "pattern-starts:bust-out,at=4000",
        "--fraud-rate",
        "0.05",
    ]);
    let records = consume_exactly(&topic, 8000, T, Duration::from_secs(2)).await;
    let codec = Codec::new();
    let mut txs: Vec<Transaction> =
        records.iter().map(|m| codec.decode_event(m.payload.as_deref().unwrap()).unwrap()).collect();
    txs.sort_by_key(|t| index(&t.event_id));
    let mean_log = |xs: &[Transaction]| xs.iter().map(|t| t.amount.ln()).sum::<f64>() / xs.len() as f64;
    let shift = mean_log(&txs[4000..6000]) - mean_log(&txs[2000..4000]);
    assert!((shift - 3f64.ln()).abs() < 0.15, "log-amount shift {shift}, want ln 3");
    // Unchanged features stay put.
    let share = |xs: &[Transaction], f: &dyn Fn(&Transaction) -> bool| {
        xs.iter().filter(|t| f(t)).count() as f64 / xs.len() as f64
    };
    let present = |t: &Transaction| t.card_present;
    assert!((share(&txs[..4000], &present) - share(&txs[4000..], &present)).abs() < 0.04);
    // The new pattern (days-old accounts spending big) appears only after the index.
    let bust_out = |t: &Transaction| t.account_age_days <= 25;
    assert_eq!(share(&txs[..4000], &bust_out), 0.0);
    assert!(share(&txs[4000..], &bust_out) > 0.005);
    delete_topics(&[&topic]).await;
}
