//! Scale-out measured on one machine: the aggregate throughput of 1, 2 and 3 scorer instances in
//! one consumer group draining the same preloaded fraud topic (six partitions), beside the
//! forwarder's on the same topic, in one run (`vigil-bench scale` → `target/bench/scale.json`).
//! On a machine of two cores the instances share them: the figure says how much of the machine
//! one more instance can use, not how a cluster of machines scales (SCALING.md).

use super::*;

/// Partitions of the input, so that three instances get two each.
const PARTITIONS: i32 = 6;

/// Runs the scale-out measurement.
pub async fn scale(env: &Env) -> Result<Json, BenchError> {
    let started = Instant::now();
    let models_topic = models_topic(env, "scale-models").await?;
    let input = unique("scale-in");
    let admin: AdminClient<DefaultClientContext> = client::base_config(&env.kafka, "bench").create()?;
    let inputs = NewTopic::new(&input, PARTITIONS, TopicReplication::Fixed(1));
    for r in admin.create_topics([&inputs], &AdminOptions::new()).await? {
        r.map_err(|(n, c)| format!("creating {n}: {c}"))?;
    }
    super::scorer::register_models(env, &models_topic).await?;
    preload(env, Workload::Fraud, &input, env.events, 42).await?;
    let scorer = super::scorer::scorer_system(Workload::Fraud, &models_topic);
    let forwarder = throughput(env, &System::forwarder(), &input, env.events).await?;
    eprintln!("scale: forwarder {:.0}/s", forwarder.events_per_s);
    let mut runs = Vec::new();
    for instances in 1..=3 {
        let t = throughput_of(env, &scorer, &input, env.events, instances).await?;
        eprintln!("scale: {instances} scorer(s) {:.0}/s, {:.0} MiB together", t.events_per_s, t.rss_mb);
        runs.push(json!({
            "instances": instances,
            "events_per_s": t.events_per_s,
            "vs_forwarder": t.events_per_s / forwarder.events_per_s,
            "rss_mb_total": t.rss_mb,
            "cpu_us_per_event": t.cpu_s * 1e6 / env.events as f64,
        }));
    }
    drop_topics(env, &[&input, &models_topic]).await;
    let report = json!({
        "benchmark": "scale",
        "machine": machine(env),
        "partitions": PARTITIONS,
        "events": env.events,
        "forwarder_events_per_s": forwarder.events_per_s,
        "scorers": runs,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    let path = write_report(env, "scale", &report)?;
    eprintln!("scale benchmark -> {}", path.display());
    Ok(report)
}
