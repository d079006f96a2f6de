//! The scorer's own work per record, without Kafka: a record's wanted fields decoded and featurised
//! into a micro-batch of 512, as the scorer's handler does, with the scorer's fast reader beside
//! the value-tree decoder (`apache-avro`'s, the fallback for schemas the fast reader does not take)
//! on the benchmark's own records, in one run. Figures are ns per record, the best pass of several
//! (a pass featurises every record 20 times), so that they move with the code, not the machine's
//! other load; what they cost inside a service is the scorer's drain CPU.

use std::time::Instant;

use serde_json::{Value as Json, json};
use vigil_events::{AvroValue, Codec, Encoding, Field, RecordReader, Wanted};
use vigil_features::batch::BatchBuilder;
use vigil_features::{FeatureSpec, Featurizer};

use super::{BenchError, Workload, source};

/// The report section of one workload, from the best of `passes` over `records` records:
/// `fast_ns_per_record`, `value_tree_ns_per_record` and their ratio.
pub fn hot_path(workload: Workload, records: usize, passes: usize) -> Result<Json, BenchError> {
    let codec = Codec::new();
    let (spec, schema) = match workload {
        Workload::Fraud => (vigil_features::FRAUD_SPEC, "dev.vigil.demo.Transaction"),
        Workload::Text => (vigil_features::SENTIMENT_SPEC, "dev.vigil.demo.TextEvent"),
    };
    let f = Featurizer::new(&FeatureSpec::parse(spec)?, codec.schema(schema)?).map_err(|p| p.join("; "))?;
    let mut names = vec!["event_id".to_string()];
    names.extend(f.fields().iter().cloned());
    let reader = RecordReader::new(&codec, schema, Encoding::Avro, Wanted::new(&names))?;
    let mut src = source(workload, 7, "hot");
    let records: Vec<Vec<u8>> = std::iter::from_fn(|| src.next_item()).take(records).map(|i| i.payload).collect();
    let fast = best_ns_per_record(&f, &records, passes, |payload, batch| {
        reader.read(&codec, payload, |fields| push(&f, batch, fields))?
    })?;
    let tree = best_ns_per_record(&f, &records, passes, |payload, batch| {
        let AvroValue::Record(record) = codec.decode(payload, schema)? else { return Err("not a record".into()) };
        let fields: Vec<Field<'_>> = names
            .iter()
            .map(|n| record.iter().find(|(k, _)| k == n).map_or(Field::Null, |(_, v)| Field::of(v)))
            .collect();
        push(&f, batch, &fields)
    })?;
    eprintln!("hot path ({workload:?}): {fast:.0} ns per record with the fast reader, {tree:.0} with the value tree");
    Ok(json!({"fast_ns_per_record": fast, "value_tree_ns_per_record": tree, "value_tree_to_fast": tree / fast}))
}

/// A record's row (its wanted fields: the event id, then the featuriser's).
fn push(f: &Featurizer, batch: &mut BatchBuilder, fields: &[Field<'_>]) -> Result<(), BenchError> {
    let Field::Str(id) = fields[0] else { return Err("a record without an event id".into()) };
    Ok(f.push(batch, id, &fields[1..])?)
}

/// The best pass's ns per record of `read` (a record's row into the batch), batches of 512 built.
fn best_ns_per_record(
    f: &Featurizer,
    records: &[Vec<u8>],
    passes: usize,
    mut read: impl FnMut(&[u8], &mut BatchBuilder) -> Result<(), BenchError>,
) -> Result<f64, BenchError> {
    let mut best = f64::INFINITY;
    for _ in 0..passes.max(1) {
        let started = Instant::now();
        let mut rows = 0;
        for _ in 0..20 {
            for chunk in records.chunks(512) {
                let mut batch = f.batch(512);
                for payload in chunk {
                    read(payload, &mut batch)?;
                }
                rows += batch.finish()?.num_rows();
            }
        }
        if rows != 20 * records.len() {
            return Err(format!("{rows} rows from {} records", 20 * records.len()).into());
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e9 / rows as f64);
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both readers featurise every record of both workloads (a failing record fails the run),
    /// and the report's ratio is theirs.
    #[test]
    fn both_readers_featurise_every_record() {
        for workload in [Workload::Fraud, Workload::Text] {
            let r = hot_path(workload, 64, 1).unwrap();
            let (fast, tree) =
                (r["fast_ns_per_record"].as_f64().unwrap(), r["value_tree_ns_per_record"].as_f64().unwrap());
            assert!(fast > 0.0 && tree > 0.0 && fast.is_finite() && tree.is_finite(), "{r}");
            assert!((r["value_tree_to_fast"].as_f64().unwrap() - tree / fast).abs() < 1e-9, "{r}");
        }
    }
}
