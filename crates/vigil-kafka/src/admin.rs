//! Topic administration: the topics Vigil owns (and the demo's input and label topics), created
//! with the settings the design asks for, and checked when they already exist.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use vigil_runtime::config::{InputConfig, KafkaConfig, TopicsConfig};

use crate::{KafkaPlumbingError, client};

/// One topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Topic-level settings.
    pub settings: Vec<(String, String)>,
}

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// Created now.
    Created,
    /// Already there with the expected settings.
    Existed,
    /// Already there, but some settings differ: (setting, expected, actual).
    Differs(Vec<(String, String, String)>),
}

/// Every topic the configuration names: inputs, labels and Vigil's own.
pub fn topic_specs(topics: &TopicsConfig, inputs: &[InputConfig]) -> Vec<TopicSpec> {
    let t = topics;
    let plain = |name: &str| TopicSpec {
        name: name.to_string(),
        partitions: t.partitions,
        replication: t.replication_factor,
        settings: vec![("cleanup.policy".into(), "delete".into())],
    };
    let retained = |name: &str| {
        let mut s = plain(name);
        s.settings.push(("retention.ms".into(), t.retention_ms.to_string()));
        s
    };
    let mut specs = Vec::new();
    for input in inputs {
        specs.push(plain(&input.topic));
        if !input.labels.is_empty() {
            specs.push(plain(&input.labels));
        }
    }
    specs.push(retained(&t.scores));
    specs.push(TopicSpec {
        name: t.models.clone(),
        partitions: 1,
        replication: t.replication_factor,
        settings: vec![
            ("cleanup.policy".into(), "compact".into()),
            ("max.message.bytes".into(), t.models_max_message_bytes.to_string()),
        ],
    });
    specs.push(retained(&t.alerts));
    specs.push(retained(&t.drift));
    specs.push(retained(&t.dlq));
    specs.push(TopicSpec {
        name: t.experiments.clone(),
        partitions: 1,
        replication: t.replication_factor,
        settings: vec![("cleanup.policy".into(), "compact".into())],
    });
    specs.dedup_by(|a, b| a.name == b.name);
    specs
}

/// An admin client for the configured cluster.
pub fn admin(kafka: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, KafkaPlumbingError> {
    client::base_config(kafka, "admin")
        .create()
        .map_err(|source| KafkaPlumbingError::Client { what: "creating an admin client", source })
}

/// Creates `specs`; existing topics are checked against the expected settings.
pub async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    specs: &[TopicSpec],
) -> Result<Vec<(String, TopicOutcome)>, KafkaPlumbingError> {
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication));
            for (k, v) in &s.settings {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(|source| KafkaPlumbingError::Client { what: "creating topics", source })?;
    let mut out = Vec::new();
    for (spec, result) in specs.iter().zip(results) {
        match result {
            Ok(_) => out.push((spec.name.clone(), TopicOutcome::Created)),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let diffs = differences(admin, spec).await?;
                let outcome = if diffs.is_empty() { TopicOutcome::Existed } else { TopicOutcome::Differs(diffs) };
                out.push((spec.name.clone(), outcome));
            }
            Err((name, code)) => {
                return Err(KafkaPlumbingError::Admin { topic: name, code });
            }
        }
    }
    Ok(out)
}

/// Settings of an existing topic that differ from the spec (partitions included).
pub async fn differences(
    admin: &AdminClient<DefaultClientContext>,
    spec: &TopicSpec,
) -> Result<Vec<(String, String, String)>, KafkaPlumbingError> {
    let actual = describe(admin, &spec.name).await?;
    let mut diffs = Vec::new();
    for (k, want) in &spec.settings {
        let got = actual.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        if &got != want {
            diffs.push((k.clone(), want.clone(), got));
        }
    }
    let partitions = partition_count(admin, &spec.name)?;
    if partitions != spec.partitions as usize {
        diffs.push(("partitions".into(), spec.partitions.to_string(), partitions.to_string()));
    }
    Ok(diffs)
}

/// A topic's configuration as (name, value).
pub async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<Vec<(String, String)>, KafkaPlumbingError> {
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &opts)
        .await
        .map_err(|source| KafkaPlumbingError::Client { what: "describing topic configs", source })?;
    let mut out = Vec::new();
    for r in results {
        let resource = r.map_err(|code| KafkaPlumbingError::Admin { topic: topic.to_string(), code })?;
        for e in resource.entries {
            out.push((e.name, e.value.unwrap_or_default()));
        }
    }
    Ok(out)
}

/// Number of partitions of `topic`.
pub fn partition_count(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Result<usize, KafkaPlumbingError> {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|source| KafkaPlumbingError::Client { what: "fetching metadata", source })?;
    let t = md.topics().iter().find(|t| t.name() == topic);
    match t {
        Some(t) if t.error().is_none() => Ok(t.partitions().len()),
        _ => {
            Err(KafkaPlumbingError::Admin { topic: topic.to_string(), code: RDKafkaErrorCode::UnknownTopicOrPartition })
        }
    }
}

/// Deletes topics (tests clean up after themselves).
pub async fn delete_topics(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[&str],
) -> Result<(), KafkaPlumbingError> {
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    admin
        .delete_topics(topics, &opts)
        .await
        .map_err(|source| KafkaPlumbingError::Client { what: "deleting topics", source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_cover_every_design_topic_with_its_settings() {
        let input = |topic: &str, labels: &str| InputConfig {
            topic: topic.into(),
            labels: labels.into(),
            model: "m".into(),
            schema: "s".into(),
            ..InputConfig::default()
        };
        let inputs = [input("fraud.transactions", "fraud.labels"), input("sentiment.texts", "sentiment.labels")];
        let specs = topic_specs(&TopicsConfig::default(), &inputs);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        for t in [
            "fraud.transactions",
            "fraud.labels",
            "sentiment.texts",
            "sentiment.labels",
            "vigil.scores",
            "vigil.models",
            "vigil.alerts",
            "vigil.drift",
            "vigil.dlq",
            "vigil.experiments",
        ] {
            assert!(names.contains(&t), "{t} missing from {names:?}");
        }
        let models = specs.iter().find(|s| s.name == "vigil.models").unwrap();
        assert_eq!(models.partitions, 1);
        assert!(models.settings.contains(&("cleanup.policy".into(), "compact".into())));
        assert!(models.settings.iter().any(|(k, v)| k == "max.message.bytes" && v.parse::<u64>().unwrap() >= 16 << 20));
    }
}
