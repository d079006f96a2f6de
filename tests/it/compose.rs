//! No Docker engine runs here, so the compose deployment is checked statically: the file parses
//! (with an independent YAML parser), every Vigil service it runs is a binary of the workspace, the
//! infrastructure it promises is there, and each service's environment is a valid Vigil configuration.

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
    for infra in ["kafka", "prometheus", "grafana", "scorer", "learner", "drift"] {
        assert!(services.contains_key(infra), "compose lacks {infra}");
    }
    let dockerfile = std::fs::read_to_string(root().join("compose/Dockerfile")).unwrap();
    for (name, svc) in services {
        let Some(cmd) = svc["command"].as_array() else { continue };
        let program = cmd[0].as_str().unwrap();
        if !program.starts_with("vigil") {
            continue;
        }
        // The binary is a [[bin]] of a workspace crate and the Dockerfile copies it.
        let crate_dir = match program {
            "vigil" => root().join("cli"),
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
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, _, err) = vigil(&["config"], &refs, None);
        assert_eq!(code, 0, "service {name}: its environment is not a valid configuration: {err}");
    }
    let prometheus = std::fs::read_to_string(root().join("compose/prometheus.yml")).unwrap();
    for target in ["scorer:9471", "learner:9472", "drift:9473"] {
        assert!(prometheus.contains(target), "prometheus does not scrape {target}");
    }
}
