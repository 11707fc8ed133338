//! Container states and the pod status kubelet would report for them (pure).
//!
//! - phase: kubelet's `getPhase` (`pkg/kubelet/kubelet_pods.go`): any container waiting for a
//!   first start → `Pending`; one running → `Running`; all stopped → `Running` if they will be
//!   restarted (`Always`, or `OnFailure` with a failure), `Succeeded` if all exited 0,
//!   `Failed` under `Never` with a failure. A container in back-off counts as stopped.
//! - conditions: `PodScheduled` and `Initialized` are true (pods arrive bound, init containers
//!   are not run); `ContainersReady` and `Ready` are true when every container runs (no
//!   readiness probes yet), else false with `ContainersNotReady`, or `PodCompleted` once the
//!   phase is terminal.
//! - containerStatuses: `state` (`waiting{reason,message}`, `running{startedAt}`,
//!   `terminated{exitCode,signal,reason,message,startedAt,finishedAt,containerID}`),
//!   `lastState`, `ready`, `started`, `restartCount`, `image`, `imageID`, `containerID`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::spec::RestartPolicy;

/// How a container instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Terminated {
    pub(crate) exit_code: i32,
    pub(crate) signal: Option<i32>,
    /// `Completed` (exit 0), `Error`, or `StartError`.
    pub(crate) reason: String,
    pub(crate) message: Option<String>,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: String,
    pub(crate) container_id: Option<String>,
}

/// A container's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Not running: not started yet, blocked on config, or in back-off.
    Waiting {
        reason: String,
        message: Option<String>,
    },
    /// Running since `started_at`.
    Running { started_at: String },
    /// Exited and will not be restarted (or not yet rescheduled).
    Terminated(Terminated),
}

/// The reported part of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerView {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) state: State,
    pub(crate) last: Option<Terminated>,
    pub(crate) restart_count: u32,
    pub(crate) container_id: Option<String>,
}

impl ContainerView {
    fn ready(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }
}

/// A pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// kubelet's `getPhase` for regular containers.
pub(crate) fn phase(policy: RestartPolicy, containers: &[ContainerView]) -> Phase {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if c.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 || containers.is_empty() {
        Phase::Pending
    } else if running > 0 || policy == RestartPolicy::Always {
        // Some container runs, or all are stopped and `Always` restarts them.
        Phase::Running
    } else if stopped == succeeded {
        Phase::Succeeded
    } else if policy == RestartPolicy::Never {
        Phase::Failed
    } else {
        Phase::Running
    }
}

/// The last transition time of each condition, kept across reports.
pub(crate) type Transitions = BTreeMap<&'static str, (bool, String)>;

/// Everything the status is computed from.
#[derive(Debug)]
pub(crate) struct PodView<'a> {
    pub(crate) policy: RestartPolicy,
    pub(crate) containers: &'a [ContainerView],
    pub(crate) start_time: Option<&'a str>,
    pub(crate) host_ip: Option<&'a str>,
    /// A terminal phase reached earlier (kubelet never leaves one).
    pub(crate) sticky: Option<Phase>,
}

/// The pod `status` object; `transitions` keeps condition transition times, `now` stamps
/// changes. Returns the status and its phase.
pub(crate) fn pod_status(
    view: &PodView<'_>,
    transitions: &mut Transitions,
    now: &str,
) -> (Value, Phase) {
    let phase = view
        .sticky
        .unwrap_or_else(|| phase(view.policy, view.containers));
    let unready: Vec<&str> = view
        .containers
        .iter()
        .filter(|c| !c.ready())
        .map(|c| c.name.as_str())
        .collect();
    let ready_cond = if phase.is_terminal() {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        let msg = format!("containers with unready status: [{}]", unready.join(" "));
        (false, Some("ContainersNotReady"), Some(msg))
    };
    let conds = [
        ("PodScheduled", (true, None, None)),
        ("Initialized", (true, None, None)),
        ("ContainersReady", ready_cond.clone()),
        ("Ready", ready_cond),
    ];
    let conditions: Vec<Value> = conds
        .into_iter()
        .map(|(kind, (ok, reason, message))| {
            let at = transition(transitions, kind, ok, now);
            condition(kind, ok, reason, message, &at)
        })
        .collect();
    let mut status = Map::new();
    status.insert("phase".into(), json!(phase.as_str()));
    status.insert("conditions".into(), Value::Array(conditions));
    if let Some(ip) = view.host_ip {
        status.insert("hostIP".into(), json!(ip));
        status.insert("hostIPs".into(), json!([{"ip": ip}]));
        status.insert("podIP".into(), json!(ip));
        status.insert("podIPs".into(), json!([{"ip": ip}]));
    }
    if let Some(t) = view.start_time {
        status.insert("startTime".into(), json!(t));
    }
    let statuses: Vec<Value> = view.containers.iter().map(container_status).collect();
    status.insert("containerStatuses".into(), Value::Array(statuses));
    status.insert("qosClass".into(), json!("BestEffort"));
    (Value::Object(status), phase)
}

fn transition(t: &mut Transitions, kind: &'static str, ok: bool, now: &str) -> String {
    match t.get(kind) {
        Some((prev, at)) if *prev == ok => at.clone(),
        _ => {
            t.insert(kind, (ok, now.to_owned()));
            now.to_owned()
        }
    }
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    at: &str,
) -> Value {
    let mut c = Map::new();
    c.insert("type".into(), json!(kind));
    c.insert("status".into(), json!(if ok { "True" } else { "False" }));
    c.insert("lastProbeTime".into(), Value::Null);
    c.insert("lastTransitionTime".into(), json!(at));
    if let Some(r) = reason {
        c.insert("reason".into(), json!(r));
    }
    if let Some(m) = message {
        c.insert("message".into(), json!(m));
    }
    Value::Object(c)
}

fn terminated_json(t: &Terminated) -> Value {
    let mut m = Map::new();
    m.insert("exitCode".into(), json!(t.exit_code));
    if let Some(s) = t.signal {
        m.insert("signal".into(), json!(s));
    }
    m.insert("reason".into(), json!(t.reason));
    if let Some(msg) = &t.message {
        m.insert("message".into(), json!(msg));
    }
    m.insert("startedAt".into(), json!(t.started_at));
    m.insert("finishedAt".into(), json!(t.finished_at));
    if let Some(id) = &t.container_id {
        m.insert("containerID".into(), json!(id));
    }
    json!({ "terminated": m })
}

fn container_status(c: &ContainerView) -> Value {
    let state = match &c.state {
        State::Waiting { reason, message } => {
            let mut w = Map::new();
            w.insert("reason".into(), json!(reason));
            if let Some(m) = message {
                w.insert("message".into(), json!(m));
            }
            json!({ "waiting": w })
        }
        State::Running { started_at } => json!({ "running": { "startedAt": started_at } }),
        State::Terminated(t) => terminated_json(t),
    };
    let last = c.last.as_ref().map_or_else(|| json!({}), terminated_json);
    let mut s = Map::new();
    s.insert("name".into(), json!(c.name));
    s.insert("state".into(), state);
    s.insert("lastState".into(), last);
    s.insert("ready".into(), json!(c.ready()));
    s.insert("started".into(), json!(c.ready()));
    s.insert("restartCount".into(), json!(c.restart_count));
    s.insert("image".into(), json!(c.image));
    s.insert("imageID".into(), json!(""));
    if let Some(id) = &c.container_id {
        s.insert("containerID".into(), json!(id));
    }
    Value::Object(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: State, last: bool) -> ContainerView {
        let t = Terminated {
            exit_code: 1,
            signal: None,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
            container_id: None,
        };
        ContainerView {
            name: "c".into(),
            image: "i".into(),
            state,
            last: last.then_some(t),
            restart_count: 0,
            container_id: None,
        }
    }

    fn exited(code: i32) -> State {
        State::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
            container_id: None,
        })
    }

    /// Goal: the phase follows kubelet's `getPhase`. Method: table over restart policy and
    /// container states (first start pending, running, back-off, exits 0 and non-zero).
    #[test]
    fn phase_table() {
        use RestartPolicy::{Always, Never, OnFailure};
        let waiting = State::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        let backoff = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
        };
        let running = State::Running {
            started_at: "t".into(),
        };
        let cases = [
            (Always, vec![view(waiting.clone(), false)], Phase::Pending),
            (
                Always,
                vec![view(running.clone(), false), view(waiting, false)],
                Phase::Pending,
            ),
            (Never, vec![view(running.clone(), false)], Phase::Running),
            (Always, vec![view(exited(0), false)], Phase::Running),
            (OnFailure, vec![view(exited(0), false)], Phase::Succeeded),
            (Never, vec![view(exited(0), false)], Phase::Succeeded),
            (Never, vec![view(exited(3), false)], Phase::Failed),
            (
                Never,
                vec![view(exited(0), false), view(exited(3), false)],
                Phase::Failed,
            ),
            (OnFailure, vec![view(backoff.clone(), true)], Phase::Running),
            (OnFailure, vec![view(exited(3), false)], Phase::Running),
            (
                Always,
                vec![view(backoff, true), view(running, false)],
                Phase::Running,
            ),
        ];
        for (i, (policy, containers, want)) in cases.into_iter().enumerate() {
            assert_eq!(phase(policy, &containers), want, "case {i}");
        }
    }

    /// Goal: conditions and their transition times behave like kubelet's. Method: report a
    /// waiting container, then a running one at a later time, then again: Ready flips once,
    /// and its transition time stays put while the status holds.
    #[test]
    fn conditions_track_transitions() {
        let mut t = Transitions::new();
        let waiting = [view(
            State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            false,
        )];
        let pv = |c: &'static [ContainerView]| PodView {
            policy: RestartPolicy::Always,
            containers: c,
            start_time: Some("t0"),
            host_ip: None,
            sticky: None,
        };
        let w: &'static [ContainerView] = Box::leak(Box::new(waiting));
        let (s, _) = pod_status(&pv(w), &mut t, "t1");
        assert_eq!(s["conditions"][3]["status"], "False");
        assert_eq!(s["conditions"][3]["reason"], "ContainersNotReady");
        let r: &'static [ContainerView] = Box::leak(Box::new([view(
            State::Running {
                started_at: "t2".into(),
            },
            false,
        )]));
        let (s, phase) = pod_status(&pv(r), &mut t, "t2");
        assert_eq!(
            (s["conditions"][3]["status"].clone(), phase),
            (json!("True"), Phase::Running)
        );
        let (s, _) = pod_status(&pv(r), &mut t, "t3");
        assert_eq!(s["conditions"][3]["lastTransitionTime"], "t2");
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "t1");
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            "t2"
        );
    }
}
