//! Scenario parsing: good files load, bad ones name file, line and field.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, Path::new("scenarios/x.toml"), "x")
}

const GOOD: &str = r#"
seed = 3
[fleet]
nodes = 10
sites = 2
pods_per_node = 2

[[workload]]
kind = "create_pods"
at_s = 0

[[fault]]
kind = "partition_sites"
at_s = 30
sites = [1]
duration_s = 60

[[fault]]
kind = "cut_fleet"
at_s = 10
duration_s = 5
"#;

/// Goal: a valid file loads with defaults filled and the timeline sorted.
#[test]
fn a_good_file_loads_sorted_with_defaults() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.name, "x");
    assert_eq!(s.seed, 3);
    assert_eq!(s.tick_ms, 10);
    assert_eq!(s.edge.status_update_period_s, 60);
    assert_eq!(s.fault[0].at_s(), 10, "faults sorted by start");
    assert_eq!(s.last_event_s(), 90);
}

/// Goal: an unknown field is refused with file, line, column and the field's name.
#[test]
fn an_unknown_field_names_file_line_and_field() {
    let text = GOOD.replace("sites = 2", "sites = 2\nnodez = 4");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.starts_with("scenarios/x.toml:6:"), "{e}");
    assert!(e.contains("nodez"), "{e}");
}

/// Goal: an unknown field inside a fault (an internally tagged table) is refused too.
#[test]
fn an_unknown_field_in_a_fault_is_refused() {
    let text = GOOD.replace("duration_s = 60", "duration_s = 60\nsite = 1");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("scenarios/x.toml:") && e.contains("site"), "{e}");
}

/// Goal: an unknown fault kind and a wrong type are refused with their line.
#[test]
fn unknown_kinds_and_wrong_types_are_refused() {
    let e = parse(&GOOD.replace("cut_fleet", "cut_everything"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut_everything"), "{e}");
    let e = parse(&GOOD.replace("nodes = 10", "nodes = \"ten\""))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("scenarios/x.toml:4:"), "{e}");
}

/// Goal: values that parse but make no sense name their field.
#[test]
fn invalid_values_name_their_field() {
    let e = parse(&GOOD.replace("nodes = 10", "nodes = 0"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "scenarios/x.toml: fleet.nodes: must be at least 1");
    let text = format!("{GOOD}\n[network]\nloss = 1.5\n");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("network.loss"), "{e}");
}

/// Goal: every shipped scenario file loads.
#[test]
fn shipped_scenarios_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path).unwrap();
            n += 1;
        }
    }
    assert!(n >= 6, "expected the six shipped scenarios, found {n}");
}
