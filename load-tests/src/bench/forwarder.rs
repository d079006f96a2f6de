//! The forwarder benchmark: B0 (consume → produce the same bytes → commit after acknowledgement)
//! against librdkafka's raw producer and consumer rates on the same broker (B1), alternating.

use super::*;

/// B1: one real record produced `n` times as fast as possible by a bare librdkafka producer with
/// Vigil's producer settings (no per-record work at all); records per second until all are acknowledged.
pub async fn raw_produce(env: &Env, topic: &str, n: u64) -> Result<f64, BenchError> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let codec = Codec::new();
    let payload = codec.encode_event(&FraudSim::new(FraudConfig::default()).transaction().tx)?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        client::producer_config(&env.kafka, "bench-raw").create()?;
    // One acknowledged record first: the idempotent producer's id handshake is start-up, not rate.
    producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..])).map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    let started = Instant::now();
    for _ in 0..n {
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// B1: consumes `n` records of `topic` from the beginning as fast as possible; records per second.
pub async fn raw_consume(env: &Env, topic: &str, n: u64) -> Result<f64, BenchError> {
    let consumer: StreamConsumer<client::LogContext> =
        client::consumer_config(&env.kafka, "bench", &unique("raw")).create_with_context(client::LogContext)?;
    consumer.subscribe(&[topic])?;
    let mut seen = 0u64;
    let mut first: Option<Instant> = None;
    while seen < n {
        match tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await {
            Ok(Ok(_)) => {
                first.get_or_insert_with(Instant::now);
                seen += 1;
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(format!("raw consume: {seen} of {n} records within 60 s").into()),
        }
    }
    let secs = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(0.0);
    Ok(n as f64 / secs.max(1e-9))
}

/// Warms the broker up before anything is measured (five times a run's records through it, not
/// reported): a freshly started broker's JVM compiles its hot paths during the first million records
/// or so, and the first benchmark's early rounds ran at 0.6 of the later ones (forwarder 380k/s,
/// 402k/s, then 687k/s in one run).
pub async fn warm_up(env: &Env) -> Result<(), BenchError> {
    let topic = unique("warm-up");
    topics(env, &[&topic]).await?;
    let n = 5 * env.events;
    let produced = raw_produce(env, &topic, n).await?;
    let consumed = raw_consume(env, &topic, n).await?;
    drop_topics(env, &[&topic]).await;
    eprintln!("broker warm-up: {n} records produced at {produced:.0}/s and consumed at {consumed:.0}/s (not reported)");
    Ok(())
}

/// The forwarder benchmark: B0 against the raw librdkafka rate (B1), alternating.
pub async fn forwarder(env: &Env) -> Result<Json, BenchError> {
    let system = System::forwarder();
    let started = Instant::now();
    let (mut fwd, mut raw_p, mut raw_c, mut rss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..env.rounds {
        let input = unique("fwd-in");
        let raw = unique("raw");
        topics(env, &[&input, &raw]).await?;
        // B: raw producer and consumer rates; A: the forwarder over a preloaded topic.
        raw_p.push(raw_produce(env, &raw, env.events).await?);
        raw_c.push(raw_consume(env, &raw, env.events).await?);
        preload(env, Workload::Fraud, &input, env.events, round as u64).await?;
        let t = throughput(env, &system, &input, env.events).await?;
        fwd.push(t.events_per_s);
        rss.push(t.rss_mb);
        eprintln!(
            "round {}: forwarder {:.0}/s, raw produce {:.0}/s, raw consume {:.0}/s",
            round + 1,
            t.events_per_s,
            raw_p[round],
            raw_c[round]
        );
        drop_topics(env, &[&input, &raw]).await;
    }
    let max_rate = median(&fwd);
    // The live maximum: the generator producing as fast as it can while the system runs, all on this
    // machine's cores; latency is measured at half of it.
    let mut live = Vec::new();
    for round in 0..env.rounds {
        let l = latency(env, &system, Workload::Fraud, None, env.events, 50 + round as u64).await?;
        eprintln!("live round {}: {:.0}/s end to end", round + 1, l.achieved);
        rss.push(l.rss_mb);
        live.push(l.achieved);
    }
    let live_max = median(&live);
    let half = (live_max / 2.0).max(100.0);
    let mut lats = Vec::new();
    for round in 0..env.rounds {
        let n = (half * env.latency_secs) as u64;
        let l = latency(env, &system, Workload::Fraud, Some(half), n, 100 + round as u64).await?;
        eprintln!(
            "latency round {} at {half:.0}/s: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms",
            round + 1,
            l.percentiles.p50_ms,
            l.percentiles.p99_ms,
            l.percentiles.p999_ms
        );
        rss.push(l.rss_mb);
        lats.push(l);
    }
    let pick = |f: fn(&Latency) -> f64| lats.iter().map(f).collect::<Vec<_>>();
    let (p50, p99, p999) =
        (pick(|l| l.percentiles.p50_ms), pick(|l| l.percentiles.p99_ms), pick(|l| l.percentiles.p999_ms));
    let report = json!({
        "benchmark": "forwarder",
        "machine": machine(env),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": commit(),
        "events_per_s": max_rate,
        "events_per_s_runs": fwd.clone(),
        "events_per_s_spread": spread(&fwd),
        "raw_produce_events_per_s": median(&raw_p),
        "raw_produce_runs": raw_p.clone(),
        "raw_consume_events_per_s": median(&raw_c),
        "raw_consume_runs": raw_c.clone(),
        "forwarder_to_raw_produce": max_rate / median(&raw_p),
        "live_events_per_s": live_max,
        "live_events_per_s_runs": live.clone(),
        "latency_rate_per_s": half,
        "p50_ms": median(&p50),
        "p99_ms": median(&p99),
        "p999_ms": median(&p999),
        "p99_ms_runs": p99.clone(),
        "latency_runs": lats,
        "rss_mb": rss.iter().cloned().fold(0.0, f64::max),
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    let path = write_report(env, "forwarder", &report)?;
    eprintln!(
        "\nforwarder benchmark ({} rounds, {} events, median [min, max]) -> {}",
        env.rounds,
        env.events,
        path.display()
    );
    table(&[
        ("forwarder events/s (drain)", &fwd),
        ("forwarder events/s (live)", &live),
        ("raw produce events/s", &raw_p),
        ("raw consume events/s", &raw_c),
        ("p50 ms @ half max", &p50),
        ("p99 ms @ half max", &p99),
        ("p99.9 ms @ half max", &p999),
    ]);
    Ok(report)
}
