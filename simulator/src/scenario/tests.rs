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

/// Goal: the API server's link defaults to embedded (in-process), and settings that only an
/// external server has are refused naming their field until `cloud.apiserver` says external.
/// Method: the good file, then a restart_apiserver fault and a cloud↔API latency, each
/// without and with `apiserver = "external"`; an unknown value is refused.
#[test]
fn external_api_settings_need_an_external_server() {
    assert_eq!(parse(GOOD).unwrap().cloud.apiserver, ApiLink::Embedded);
    let restart =
        format!("{GOOD}\n[[fault]]\nkind = \"restart_apiserver\"\nat_s = 5\ndown_s = 5\n");
    let e = parse(&restart).unwrap_err().to_string();
    assert!(e.contains("fault[") && e.contains("external"), "{e}");
    let latency = format!("{GOOD}\n[network]\ncloud_api_latency_ms = 3\n");
    let e = parse(&latency).unwrap_err().to_string();
    assert!(e.contains("network.cloud_api_latency_ms"), "{e}");
    for text in [&restart, &latency] {
        let ext = format!("{text}\n[cloud]\napiserver = \"external\"\n");
        assert_eq!(parse(&ext).unwrap().cloud.apiserver, ApiLink::External);
    }
    let bad = format!("{GOOD}\n[cloud]\napiserver = \"remote\"\n");
    let e = parse(&bad).unwrap_err().to_string();
    assert!(e.contains("x.toml:") && e.contains("`remote`"), "{e}");
}

/// Goal: the driver calls an embedded server in-process unless told to use HTTPS, always
/// uses HTTPS with an external one, and an in-process driver beside an external server is
/// refused naming `cloud.driver`.
#[test]
fn the_driver_link_follows_the_api_server() {
    let link =
        |extra: &str| parse(&format!("{GOOD}\n[cloud]\n{extra}\n")).map(|s| s.cloud.driver_link());
    assert_eq!(
        parse(GOOD).unwrap().cloud.driver_link(),
        DriverLink::InProcess
    );
    assert_eq!(link("driver = \"https\"").unwrap(), DriverLink::Https);
    assert_eq!(link("apiserver = \"external\"").unwrap(), DriverLink::Https);
    let e = link("apiserver = \"external\"\ndriver = \"in_process\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cloud.driver") && e.contains("embedded"), "{e}");
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

const DEVICES: &str = r#"
[fleet]
nodes = 4
sites = 2
devices_per_node = 3

[edge]
twin_report_period_s = 5

[[workload]]
kind = "create_devices"
at_s = 0

[[workload]]
kind = "desired_churn"
at_s = 20
rounds = 2
share = 0.5
interval_s = 10
"#;

/// Goal: a device scenario loads with the mapper's defaults, and the churn counts in the
/// timeline's end. Method: parse a small device file.
#[test]
fn a_device_scenario_loads() {
    let s = parse(DEVICES).unwrap();
    assert!(s.has_devices());
    assert_eq!(s.edge.twin_report_period_s, 5);
    assert_eq!(s.edge.device_sensors, ["temperature"]);
    assert_eq!(s.edge.device_actuators, ["target"]);
    assert_eq!(s.last_event_s(), 40);
    let held = parse(&format!("hold_s = 300\n{DEVICES}")).unwrap();
    assert_eq!(held.last_event_s(), 300, "hold_s extends the timeline");
    let short = parse(&format!("hold_s = 10\n{DEVICES}")).unwrap();
    assert_eq!(short.last_event_s(), 40, "hold_s never shortens it");
}

/// Goal: device settings that make no sense are refused naming their field; unknown fields
/// of the new phases are refused too. Method: one bad edit at a time.
#[test]
fn bad_device_settings_name_their_field() {
    let cases = [
        ("share = 0.5", "share = 2.0", "workload[1].share"),
        (
            "twin_report_period_s = 5",
            "twin_report_period_s = 0",
            "edge.twin_report_period_s",
        ),
        (
            "twin_report_period_s = 5",
            "twin_report_period_s = 5\ndevice_actuators = []",
            "edge.device_actuators",
        ),
        (
            "twin_report_period_s = 5",
            "twin_report_period_s = 5\ndevice_sensors = [\"bad key\"]",
            "edge.device_sensors",
        ),
        (
            "twin_report_period_s = 5",
            "twin_report_period_s = 5\ndevice_sensors = [\"target\"]",
            "edge.device_actuators",
        ),
        (
            "kind = \"create_devices\"",
            "kind = \"create_pods\"",
            "workload",
        ),
        ("devices_per_node = 3", "devices_per_node = 0", "workload"),
        ("interval_s = 10", "interval_s = 10\nvalue = 3", "value"),
    ];
    for (from, to, field) in cases {
        let e = parse(&DEVICES.replace(from, to)).unwrap_err().to_string();
        assert!(e.contains(field), "{to}: {e}");
    }
}
