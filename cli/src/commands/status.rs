//! `vigil status`: what an operator looks at first, from Kafka alone — each model's champion and
//! challenger, each input's end offset, rate and the scorer group's lag, and the alerts still open.
//! `--watch N` redraws every N seconds (clearing the screen when standard output is a terminal).

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use vigil_events::{Alert, AlertState, Codec};
use vigil_kafka::client;

use crate::Config;

/// One input's offsets.
struct Input {
    topic: String,
    model: String,
    end: i64,
    lag: Option<i64>,
}

/// Prints the status once, or every `watch` seconds until interrupted.
pub fn run(config: &Config, watch: Option<f64>) -> anyhow::Result<ExitCode> {
    let codec = Codec::new();
    let consumer: BaseConsumer<client::LogContext> =
        client::consumer_config(&config.kafka, "status", &config.scorer.group_id)
            .create_with_context(client::LogContext)?;
    let mut before: Option<(Instant, HashMap<String, i64>)> = None;
    loop {
        let inputs = inputs(config, &consumer)?;
        let now = Instant::now();
        let ends: HashMap<String, i64> = inputs.iter().map(|i| (i.topic.clone(), i.end)).collect();
        let rates = before.as_ref().map(|(at, then)| {
            let secs = now.duration_since(*at).as_secs_f64().max(1e-3);
            ends.iter().map(|(t, e)| (t.clone(), (e - then.get(t).copied().unwrap_or(*e)) as f64 / secs)).collect()
        });
        let screen = render(config, &codec, &inputs, rates.as_ref())?;
        if watch.is_some() && std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H");
        }
        println!("{screen}");
        let Some(every) = watch else { return Ok(ExitCode::SUCCESS) };
        before = Some((now, ends));
        std::thread::sleep(Duration::from_secs_f64(every.max(0.5)));
    }
}

/// Every configured input's end offset and the scorer group's lag on it.
fn inputs(config: &Config, consumer: &BaseConsumer<client::LogContext>) -> anyhow::Result<Vec<Input>> {
    let timeout = Duration::from_secs(10);
    let mut out = Vec::new();
    for input in &config.inputs {
        let md = consumer.fetch_metadata(Some(&input.topic), timeout)?;
        let partitions: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        let mut tpl = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for p in &partitions {
            let (_, high) = client::watermarks(consumer, &input.topic, *p, timeout)?;
            ends.insert(*p, high);
            tpl.add_partition(&input.topic, *p);
        }
        let committed = consumer.committed_offsets(tpl, timeout)?;
        let positions: Vec<Option<i64>> = partitions
            .iter()
            .map(|p| match committed.find_partition(&input.topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            })
            .collect();
        let lag = positions
            .iter()
            .zip(&partitions)
            .map(|(at, p)| at.map(|at| (ends[p] - at).max(0)))
            .try_fold(0i64, |sum, l| l.map(|l| sum + l));
        out.push(Input { topic: input.topic.clone(), model: input.model.clone(), end: ends.values().sum(), lag });
    }
    Ok(out)
}

fn render(
    config: &Config,
    codec: &Codec,
    inputs: &[Input],
    rates: Option<&HashMap<String, f64>>,
) -> anyhow::Result<String> {
    use std::fmt::Write;
    let registry = super::models::registry(config, codec)?;
    let mut s = String::new();
    writeln!(s, "MODELS")?;
    writeln!(
        s,
        "  {:<14} {:<10} {:<11} {:>8} {:>8}  {:>8}",
        "model", "champion", "challenger", "accuracy", "auc", "versions"
    )?;
    for m in registry.models() {
        let champion = registry.champion(&m);
        let metric = |f: &dyn Fn(&vigil_events::PrequentialMetrics) -> Option<f64>| {
            champion.and_then(|c| c.metrics.as_ref()).and_then(f).map_or("-".to_string(), |v| format!("{v:.4}"))
        };
        writeln!(
            s,
            "  {:<14} {:<10} {:<11} {:>8} {:>8}  {:>8}",
            m,
            champion.map_or("none".to_string(), |c| format!("v{}", c.version)),
            registry.challenger(&m).map_or("-".to_string(), |c| format!("v{}", c.version)),
            metric(&|x| Some(x.accuracy)),
            metric(&|x| x.auc),
            registry.versions(&m).len()
        )?;
    }
    writeln!(s, "\nINPUTS (scorer group {})", config.scorer.group_id)?;
    let w = inputs.iter().map(|i| i.topic.len()).max().unwrap_or(0).max(24);
    writeln!(s, "  {:<w$} {:<14} {:>12} {:>10} {:>10}", "topic", "model", "end offset", "events/s", "lag")?;
    for i in inputs {
        let rate = rates.and_then(|r| r.get(&i.topic)).map_or("-".to_string(), |r| format!("{r:.0}"));
        let lag = i.lag.map_or("-".to_string(), |l| l.to_string());
        writeln!(s, "  {:<w$} {:<14} {:>12} {:>10} {:>10}", i.topic, i.model, i.end, rate, lag)?;
    }
    let open = open_alerts(config, codec)?;
    writeln!(s, "\nOPEN ALERTS ({})", open.len())?;
    for a in &open {
        let feature = a.feature.as_deref().unwrap_or("-");
        let model = a.model.as_deref().unwrap_or("-");
        writeln!(s, "  {:<18} {:<12} {:<28} {}", format!("{:?}", a.kind), model, feature, a.message)?;
    }
    Ok(s)
}

/// The alerts whose latest record (by dedup key) is firing; promotions and other notices, which
/// are never resolved, are left out.
fn open_alerts(config: &Config, codec: &Codec) -> anyhow::Result<Vec<Alert>> {
    let records = super::read_topic(config, &config.topics.alerts, None)?;
    let mut latest: BTreeMap<String, Alert> = BTreeMap::new();
    for payload in records {
        if let Ok(a) = codec.decode_event::<Alert>(&payload) {
            latest.insert(a.dedup_key.clone(), a);
        }
    }
    let notice = |a: &Alert| matches!(a.kind, vigil_events::AlertKind::ModelPromoted);
    Ok(latest.into_values().filter(|a| a.state == AlertState::Firing && !notice(a)).collect())
}
