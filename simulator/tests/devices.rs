//! Devices end to end in the simulator: `scenarios/devices-smoke.toml` (20 nodes × 3 devices,
//! virtual mappers reporting every 2 s, two desired-value rounds, a site partitioned for
//! 30 s) with a fixed seed.
#![allow(clippy::unwrap_used, reason = "test")]

use std::path::Path;

use ke_core::Clock as _;
use simulator::{RunOptions, Scenario};

/// Goal: every device check passes and the figures are consistent: each accepted mapper
/// report reaches the cloud, every desired value reaches its device, the offline site's
/// reports arrive after the heal. Method: run devices-smoke with seed 1; read the outcome.
#[test]
fn devices_smoke_passes_with_consistent_figures() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/devices-smoke.toml");
    let sc = Scenario::load(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        seed: 1,
        nodes: None,
        work_dir: dir.path().to_owned(),
        epoch: ke_core::SystemClock
            .now_utc()
            .replace_time(time::Time::MIDNIGHT),
        events: None,
        free_world: true,
    };
    // Debug builds nest deep futures (cloudcore, API server): more stack than a test
    // thread's 2 MiB; the harness runs the simulation on the main thread (8 MiB).
    let o = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || simulator::run(&sc, &opts, |_| {}))
        .unwrap()
        .join()
        .unwrap();
    let failed: Vec<_> = o.checks.iter().filter(|c| !c.passed).collect();
    assert!(o.passed, "crash {:?}, failed {failed:#?}", o.crash);
    for name in [
        "twin_reports_not_lost",
        "twin_reports_in_order",
        "desired_reached_devices",
    ] {
        assert!(o.checks.iter().any(|c| c.name == name), "{name} missing");
    }
    let d = o.metrics.devices.unwrap();
    assert_eq!(d.devices, 60);
    assert!(d.mapper_reports_accepted > 1000, "{d:?}");
    assert_eq!(d.mapper_reports_refused, 0);
    // Every accepted twin report plus one state report per device (per mapper start).
    assert!(
        d.reports_confirmed >= d.mapper_reports_accepted + 60,
        "{d:?}"
    );
    assert_eq!(d.desired_to_device_ms.count, d.desired_writes, "{d:?}");
    // The partitioned site's reports waited out the 30 s cut.
    assert!(d.report_to_status_ms.max > 25_000.0, "{d:?}");
}
