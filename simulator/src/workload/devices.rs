//! The driver's device phases and checks: the DeviceModel and Devices created through the API
//! server like pods, desired-value churn, deletes; an observer of DeviceStatus writes (in the
//! API server's process: its store's event fan-out, so nothing is added to the wire); and,
//! once the workload is over, the device checks.

use std::{sync::atomic::Ordering, time::Duration};

use futures::{StreamExt, stream};
use ke_cloud::devicecontroller::DeviceKind;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{ATTEMPTS, CONCURRENCY, Driver, check, now, retry};
use crate::{
    devices::{DEVICE_NS, INITIAL_DESIRED, MODEL, STATUS_PREFIX, device_name, reported},
    fleet::Shared,
    outcome::CheckKind,
    scenario::Scenario,
};

/// The device APIs of the fleet's namespace (the simulator's driver and real mode's).
pub struct DeviceApis {
    /// Devices.
    pub devices: Api<DynamicObject>,
    /// DeviceModels.
    pub models: Api<DynamicObject>,
}

impl DeviceApis {
    /// Both APIs on `client`.
    pub fn new(client: kube::Client) -> Self {
        let ar = |k: DeviceKind| k.api_resource();
        Self {
            devices: Api::namespaced_with(client.clone(), DEVICE_NS, &ar(DeviceKind::Device)),
            models: Api::namespaced_with(client, DEVICE_NS, &ar(DeviceKind::DeviceModel)),
        }
    }
}

/// The fleet's DeviceModel: every sensor read-only, every actuator read-write.
pub fn model_object(sc: &Scenario) -> Value {
    let e = &sc.edge;
    let prop =
        |name: &String, mode: &str| json!({"name": name, "type": "STRING", "accessMode": mode});
    let mut props: Vec<Value> = e
        .device_sensors
        .iter()
        .map(|s| prop(s, "ReadOnly"))
        .collect();
    props.extend(e.device_actuators.iter().map(|a| prop(a, "ReadWrite")));
    json!({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceModel",
        "metadata": {"name": MODEL, "namespace": DEVICE_NS},
        "spec": {"protocol": "virtual", "properties": props}})
}

/// `spec.properties` of a device whose actuators desire `desired`.
fn properties(sc: &Scenario, desired: &str) -> Vec<Value> {
    let e = &sc.edge;
    let cycle = e.twin_report_period_s * 1000;
    let mut props: Vec<Value> = e
        .device_sensors
        .iter()
        .map(|s| json!({"name": s, "reportCycle": cycle, "reportToCloud": true}))
        .collect();
    props.extend(e.device_actuators.iter().map(|a| {
        json!({"name": a, "reportToCloud": true,
            "desired": {"value": desired, "metadata": {"type": "string"}}})
    }));
    props
}

/// Device `name` on node `node`.
pub fn device_object(sc: &Scenario, node: &str, name: &str) -> Value {
    json!({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": name, "namespace": DEVICE_NS},
        "spec": {"nodeName": node, "deviceModelRef": {"name": MODEL},
            "protocol": {"protocolName": "virtual"},
            "properties": properties(sc, INITIAL_DESIRED)}})
}

fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("invariant: a literal object deserializes")
}

impl Driver {
    /// Every device: (node index, device name).
    fn all_devices(&self) -> Vec<(usize, String)> {
        let per = self.sh.scenario.fleet.devices_per_node;
        (0..self.sh.names.len())
            .flat_map(|i| (0..per).map(move |j| (i, device_name(i, j))))
            .collect()
    }

    /// Creates the DeviceModel (waiting for cloudcore to install the CRDs) and the Devices.
    pub(super) async fn create_devices(&self) {
        let model = dynamic(model_object(&self.sh.scenario));
        let pp = PostParams::default();
        for attempt in 0..ATTEMPTS {
            match self.dev.models.create(&pp, &model).await {
                Ok(_) | Err(kube::Error::Api(kube::core::ErrorResponse { code: 409, .. })) => {
                    break;
                }
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "model not created yet (CRDs?)");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        stream::iter(self.all_devices())
            .map(|(i, name)| self.create_device(i, name))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }

    async fn create_device(&self, node: usize, name: String) {
        let sc = &self.sh.scenario;
        let obj = dynamic(device_object(sc, &self.sh.names[node], &name));
        let pp = PostParams::default();
        if retry("create device", || self.dev.devices.create(&pp, &obj))
            .await
            .is_some()
        {
            for a in &sc.edge.device_actuators {
                self.sh.devices.desired_set(&name, a, INITIAL_DESIRED);
            }
        }
    }

    /// `rounds` rounds of new desired values on a share of the devices.
    pub(super) async fn desired_churn(&self, rounds: u64, share: f64, interval_s: u64) {
        let all = self.all_devices();
        for round in 1..=rounds {
            let mut rng = ChaCha8Rng::seed_from_u64(self.sh.seed ^ round.wrapping_mul(0xdec0));
            let mut picked = all.clone();
            picked.shuffle(&mut rng);
            picked.truncate(((all.len() as f64) * share).round() as usize);
            picked.sort_unstable();
            let value = format!("{round}");
            stream::iter(picked)
                .map(|(_, name)| self.set_desired(name, &value))
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<()>>()
                .await;
            tokio::time::sleep(Duration::from_secs(interval_s)).await;
        }
    }

    async fn set_desired(&self, name: String, value: &str) {
        let sc = &self.sh.scenario;
        let patch = Patch::Merge(json!({"spec": {"properties": properties(sc, value)}}));
        let pp = PatchParams::default();
        for a in &sc.edge.device_actuators {
            self.sh.devices.desired_sent(&name, a, value, now());
        }
        let done = retry("patch device", || {
            self.dev.devices.patch(&name, &pp, &patch)
        })
        .await;
        if done.is_some() {
            for a in &sc.edge.device_actuators {
                self.sh.devices.desired_set(&name, a, value);
            }
        }
    }

    /// Deletes every Device.
    pub(super) async fn delete_devices(&self) {
        self.sh.devices.deleted.store(true, Ordering::Relaxed);
        stream::iter(self.all_devices())
            .map(|(_, name)| async move {
                let dp = DeleteParams::default();
                retry("delete device", || self.dev.devices.delete(&name, &dp)).await;
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }

    /// After the workload: mappers stop their periodic reports, and the device checks wait
    /// (until `deadline`) for every report and desired value to arrive.
    pub(super) async fn converge_devices(&self, deadline: Duration) {
        let book = &self.sh.devices;
        loop {
            let settled = book.outbox() == 0 && book.desired_pending() == 0;
            // Comparing every device is the expensive part: only once nothing is in flight.
            let (lost, unreached, first) = if settled || now() >= deadline {
                self.compare_devices()
            } else {
                (u64::MAX, u64::MAX, Vec::new())
            };
            if (settled && lost == 0 && unreached == 0) || now() >= deadline {
                self.device_checks(lost, unreached, &first);
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    fn device_checks(&self, lost: u64, unreached: u64, first: &[String]) {
        let book = &self.sh.devices;
        self.sh
            .trace
            .event(format_args!("device activity {}", book.activity()));
        let n = self.all_devices().len();
        let deleted = book.deleted.load(Ordering::Relaxed);
        let accepted = book.accepted.load(Ordering::Relaxed);
        let (unseen, unseen_first) = book.unseen_reports();
        let detail = if lost == 0 && unseen == 0 {
            format!(
                "each of {accepted} accepted reports reached DeviceStatus; every device's ({n}) shows its last"
            )
        } else {
            let f: Vec<&String> = first.iter().filter(|d| !d.contains(": desired ")).collect();
            format!(
                "{lost} sensor values differ from the last report: {f:?}; {unseen} devices with reports missing from DeviceStatus: {unseen_first:?}"
            )
        };
        let ok = (lost == 0 && unseen == 0) || deleted;
        self.sh.check(check(
            "twin_reports_not_lost",
            CheckKind::Safety,
            ok,
            detail,
        ));
        let regressions = book.regressions.load(Ordering::Relaxed);
        let writes = book.status_writes.load(Ordering::Relaxed);
        let lagged = book.observer_lagged.load(Ordering::Relaxed);
        let detail = format!(
            "{regressions} reported values went back in {writes} DeviceStatus writes ({lagged} unobserved) {:?}",
            book.regression_samples()
        );
        let ok = regressions == 0;
        self.sh.check(check(
            "twin_reports_in_order",
            CheckKind::Safety,
            ok,
            detail,
        ));
        let detail = if unreached == 0 {
            let w = book.desired_writes.load(Ordering::Relaxed);
            format!("{w} desired values written; every actuator holds and reports the latest")
        } else {
            let f: Vec<&String> = first.iter().filter(|d| d.contains(": desired ")).collect();
            format!("{unreached} actuators miss their latest desired value: {f:?}")
        };
        let ok = unreached == 0 || deleted;
        self.sh.check(check(
            "desired_reached_devices",
            CheckKind::Liveness,
            ok,
            detail,
        ));
    }

    /// (sensor values lost, actuators without their desired value, first few differences of
    /// each kind).
    fn compare_devices(&self) -> (u64, u64, Vec<String>) {
        let Some(access) = self.sh.api_now() else {
            return (u64::MAX, u64::MAX, vec!["API server down".into()]);
        };
        let store = &access.state.api.store;
        let sc = &self.sh.scenario;
        let (mut lost, mut unreached) = (0, 0);
        let (mut first, mut first_unreached) = (Vec::new(), Vec::new());
        let note = |d: String, first: &mut Vec<String>| {
            if first.len() < 5 {
                first.push(d);
            }
        };
        for (i, name) in self.all_devices() {
            let key = ke_apiserver::store::object_key(DEVICE_NS, &name);
            let status: Value = store
                .get(STATUS_PREFIX, &key)
                .and_then(|o| serde_json::from_slice(&o.json).ok())
                .unwrap_or(Value::Null);
            let st = self
                .sh
                .devices
                .with_node(i as u32, |n| n.get(&name).cloned())
                .unwrap_or_default();
            for s in &sc.edge.device_sensors {
                let got = reported(&status, s);
                let want = st.accepted.get(s);
                let pending = |r: &crate::devices::Reading| {
                    st.pending.values().any(|p| p.get(s) == Some(r))
                        && want.is_none_or(|w| r.ts > w.ts)
                };
                let ok = match (&got, want) {
                    (Some(g), Some(w)) => g == w || pending(g),
                    (None, None) => true,
                    (Some(g), None) => pending(g),
                    (None, Some(_)) => false,
                };
                if !ok {
                    lost += 1;
                    note(
                        format!("{name}/{s}: status {got:?}, mapper {want:?}"),
                        &mut first,
                    );
                }
            }
            for a in &sc.edge.device_actuators {
                let want = self.sh.devices.desired(&name, a);
                let held = st.actuators.get(a);
                let got = reported(&status, a).map(|r| r.value);
                if want.is_some() && (held != want.as_ref() || got != want) {
                    unreached += 1;
                    note(
                        format!("{name}/{a}: desired {want:?}, mapper {held:?}, status {got:?}"),
                        &mut first_unreached,
                    );
                }
            }
        }
        first.extend(first_unreached);
        (lost, unreached, first)
    }
}

/// Follows DeviceStatus writes in the API server's store (for the report → DeviceStatus
/// latency and the order check); never returns.
pub(super) async fn observe_status(sh: &Shared) {
    use tokio::sync::broadcast::error::RecvError;
    let epoch_ms = (sh.epoch.unix_timestamp_nanos() / 1_000_000) as i64;
    loop {
        let access = sh.api_access().await;
        let Ok(sub) = access.state.api.store.watch(STATUS_PREFIX, None) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        drop(access);
        let mut rx = sub.rx;
        loop {
            match rx.recv().await {
                Ok(ev) if &*ev.prefix == STATUS_PREFIX => {
                    let v: Value = serde_json::from_slice(&ev.obj.json).unwrap_or_default();
                    let t = i64::try_from(now().as_millis()).unwrap_or(i64::MAX);
                    sh.devices.status_written(&v, epoch_ms + t);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    sh.devices.observer_lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(RecvError::Closed) => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
