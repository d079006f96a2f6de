//! No Docker engine runs here, so the compose deployment is checked statically: the file parses
//! (with an independent YAML parser), every Vigil service it runs is a binary of the workspace, the
//! infrastructure it promises is there, and each service's environment is a valid Vigil configuration.
//! The Grafana dashboard and the Prometheus alert rules query only metrics the services export.

use std::time::Duration;

use serde_json::Value as Json;
use vigil_e2e::*;

fn compose() -> Json {
    let file = root().join("compose/docker-compose.yml");
    let (code, out, err) = python_support_inline(&format!(
        "import json, sys, yaml; print(json.dumps(yaml.safe_load(open({:?}))))",
        file.to_str().unwrap()
    ));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn python_support_inline(code: &str) -> (i32, String, String) {
    let out = std::process::Command::new(python()).args(["-c", code]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn every_service_in_the_compose_file_exists_in_the_workspace() {
    let c = compose();
    let services = c["services"].as_object().expect("services");
    let story = ["keys", "topics", "bootstrap", "load", "console"];
    for infra in ["kafka", "prometheus", "grafana", "scorer", "learner", "drift"].iter().chain(&story) {
        assert!(services.contains_key(*infra), "compose lacks {infra}");
    }
    let dockerfile = std::fs::read_to_string(root().join("compose/Dockerfile")).unwrap();
    // The image's configuration is the demo's (its inputs), checked below with each environment.
    assert!(dockerfile.contains("COPY config/demo.toml /etc/vigil/vigil.toml"));
    assert!(dockerfile.contains("ENV VIGIL_CONFIG=/etc/vigil/vigil.toml"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/vigil-entry\"]"));
    // The services start once the signed starting models are there (after the key and the topics).
    for (name, after) in
        [("scorer", "bootstrap"), ("learner", "bootstrap"), ("load", "bootstrap"), ("bootstrap", "keys")]
    {
        let condition = &services[name]["depends_on"][after]["condition"];
        assert_eq!(condition, "service_completed_successfully", "{name} waits for {after}");
    }
    for (name, svc) in services {
        let Some(cmd) = svc["command"].as_array() else { continue };
        let program = cmd[0].as_str().unwrap();
        if !program.starts_with("vigil") {
            continue;
        }
        // The binary is a [[bin]] of a workspace crate and the Dockerfile copies it.
        let crate_dir = match program {
            "vigil" => root().join("cli"),
            "vigil-load" => root().join("load-tests"),
            other => root().join("services").join(other.trim_start_matches("vigil-")),
        };
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml"))
            .unwrap_or_else(|_| panic!("service {name} runs {program}, but {} does not exist", crate_dir.display()));
        assert!(
            manifest.contains(&format!("name = \"{program}\"")),
            "{program} is not a binary of {}",
            crate_dir.display()
        );
        assert!(dockerfile.contains(&format!("target/release/{program}")), "the Dockerfile does not ship {program}");
        bin(program); // and it was built

        // Its environment is a configuration Vigil accepts.
        let env = svc["environment"].as_object().or_else(|| c["x-vigil"]["environment"].as_object()).unwrap();
        let pairs: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect();
        let mut refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let demo = root().join("config/demo.toml");
        refs.push(("VIGIL_CONFIG", demo.to_str().unwrap()));
        let (code, _, err) = vigil(&["config"], &refs, None);
        assert_eq!(code, 0, "service {name}: its environment is not a valid configuration: {err}");
    }
    let prometheus = std::fs::read_to_string(root().join("compose/prometheus/prometheus.yml")).unwrap();
    for target in ["scorer:9471", "learner:9472", "drift:9473"] {
        assert!(prometheus.contains(target), "prometheus does not scrape {target}");
    }
}

/// The containers' entry point, run here with the workspace's binaries: `init-keys` makes the key
/// pair once, and every other command runs with the scorer trusting its public half and the learner
/// signing with its private half, unless the operator set them.
#[test]
fn the_entry_point_wires_the_signing_key_into_every_service() {
    let keys = std::env::temp_dir().join(unique("compose-keys"));
    std::fs::create_dir_all(&keys).unwrap();
    let path = format!("{}:{}", bin("vigil").parent().unwrap().display(), std::env::var("PATH").unwrap());
    let entry = |args: &[&str], extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg(root().join("compose/entry.sh")).args(args).env("PATH", &path).env("VIGIL_KEYS_DIR", &keys);
        cmd.env("VIGIL_CONFIG", root().join("config/demo.toml")).envs(extra.iter().copied());
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "entry.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(entry(&["init-keys"], &[]).contains("made a signing key"));
    let public = std::fs::read_to_string(keys.join("public.hex")).unwrap().trim().to_string();
    assert!(public.len() == 64 && public.chars().all(|c| c.is_ascii_hexdigit()), "{public:?}");
    assert!(entry(&["init-keys"], &[]).contains("already"), "a second run keeps the key");
    assert_eq!(std::fs::read_to_string(keys.join("public.hex")).unwrap().trim(), public);
    let config = entry(&["vigil", "config"], &[]);
    assert!(config.contains(&format!("trusted-keys = [\"{public}\"]")), "the scorer trusts the key:\n{config}");
    assert!(config.contains(&format!("sign-key = \"{}\"", keys.join("signing.key").display())), "{config}");
    let own = "[\"0000000000000000000000000000000000000000000000000000000000000000\"]";
    let config = entry(&["vigil", "config"], &[("VIGIL_SCORER__TRUSTED_KEYS", own)]);
    assert!(config.contains(&format!("trusted-keys = {own}")), "the operator's key wins:\n{config}");
    let _ = std::fs::remove_dir_all(&keys);
}

/// The metric names a service exports, from its `/metrics` (`# TYPE` lines, with the sample names
/// counters and histograms expand to).
fn exported(port: u16) -> std::collections::HashSet<String> {
    let (_, body) = http_get(port, "/metrics").expect("a /metrics page");
    let mut names = std::collections::HashSet::new();
    for line in body.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The metric families each service registers, read from its `telemetry.rs` (`sub_registry_with_prefix`
/// and `register("name", …)`): families without a sample yet (no alert raised, no dead letter) are
/// not on `/metrics`, so the running services alone cannot list them.
fn registered() -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    for service in ["scorer", "learner", "drift"] {
        let text = std::fs::read_to_string(root().join(format!("services/{service}/src/telemetry.rs"))).unwrap();
        let prefix = text.split("sub_registry_with_prefix(\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
        let squeezed: String = text.split_whitespace().collect::<Vec<_>>().join(" ").replace("( ", "(");
        for part in squeezed.split("register(\"").skip(1) {
            let name = part.split('"').next().unwrap();
            names.insert(format!("{prefix}_{name}"));
        }
    }
    names
}

/// Strips the suffix a counter's or a histogram's samples carry.
fn family(name: &str) -> &str {
    ["_total", "_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name)
}

/// Every `vigil_*` metric the Grafana dashboard and the Prometheus alert rules query is one the
/// services export: on a running service's `/metrics` (the three started on a broker) or registered
/// by its telemetry (read from the source, which must agree with what the running ones show).
#[tokio::test]
async fn every_metric_the_dashboard_and_rules_use_is_exported() {
    let stack = Stack::new("metrics", 1, "").await;
    let (code, _, err) = stack.vigil(&["models", "bootstrap"], None);
    assert_eq!(code, 0, "{err}");
    let dir = std::env::temp_dir().join(&stack.prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = std::collections::HashSet::new();
    let mut running = Vec::new();
    for program in ["vigil-scorer", "vigil-learner", "vigil-drift"] {
        let port = free_port();
        running.push(Running(stack.spawn_logged(program, port, &dir.join(format!("{program}.log")))));
        wait_ready(port, Duration::from_secs(60), program);
        names.extend(exported(port));
    }
    let registered = registered();
    for name in &names {
        assert!(registered.contains(family(name)), "{name} is on /metrics but not found in a telemetry.rs");
    }
    assert!(names.len() >= 8, "the running services export {} metric names", names.len());
    let files = ["compose/prometheus/rules.yml", "compose/grafana/provisioning/dashboards/vigil.json"];
    let mut used = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("vigil_") {
            let name: String =
                rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            rest = &rest[at + name.len()..];
            if !name.ends_with('_') {
                used.insert((file, name));
            }
        }
    }
    assert!(used.len() >= 20, "the files query {} metrics", used.len());
    let missing: Vec<_> = used.iter().filter(|(_, n)| !names.contains(n) && !registered.contains(family(n))).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    println!(
        "{} metric references in the dashboard and rules, all exported ({} names on the running services' /metrics, {} families registered)",
        used.len(),
        names.len(),
        registered.len()
    );
    // The dashboard is JSON Grafana can load, and the rules are YAML with a rule per alert.
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(files[1])).unwrap()).unwrap();
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let rules = root().join(files[0]);
    let (code, out, err) = python_support_inline(&format!(
        "import yaml; g = yaml.safe_load(open({:?}))['groups'][0]; print(len([r for r in g['rules'] if r['alert'] and r['expr']]))",
        rules.to_str().unwrap()
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().parse::<usize>().unwrap() >= 8, "{out}");
    drop(running);
    stack.delete().await;
}
