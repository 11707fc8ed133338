//! The pod manager's per-pod and per-container state ([`Pod`], [`Ctr`]).

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde_json::Value;
use tokio::time::Instant;

use super::{
    resolve::{CONFIG_ERROR, CONTAINER_CREATING, ConfigError},
    runtime::{ContainerId, SandboxConfig},
    spec::PodDef,
    status::{self, ContainerView, Phase, PodView, State, Terminated, Transitions},
};

/// Where a pod is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Containers run and restart per policy.
    Active,
    /// The spec changed: stopping, then the new spec starts.
    Replacing,
    /// `deletionTimestamp` set: stopping, then reported ready for removal.
    Terminating,
    /// Gone from the store (or replaced by another UID): stopping, then the sandbox goes.
    Removing,
}

/// One container of a pod.
#[derive(Debug)]
pub(crate) struct Ctr {
    /// What is reported.
    pub(crate) view: ContainerView,
    /// The live instance, if one runs.
    pub(crate) id: Option<ContainerId>,
    /// Starts so far (failed starts included).
    pub(crate) attempts: u32,
    /// Back-off level for the next restart.
    pub(crate) backoff_level: u32,
    /// When to (re)start it, if scheduled.
    pub(crate) next_start: Option<Instant>,
    /// When the live instance started (for the back-off reset).
    pub(crate) started: Option<Instant>,
}

impl Ctr {
    /// Not running and waiting on config or volumes (retried on a config change).
    pub(crate) fn is_blocked(&self) -> bool {
        self.id.is_none()
            && matches!(&self.view.state, State::Waiting { reason, .. }
                if reason == CONFIG_ERROR || reason == CONTAINER_CREATING)
    }

    /// Records why the container cannot start yet.
    pub(crate) fn block(&mut self, e: ConfigError) {
        self.view.state = State::Waiting {
            reason: e.reason.to_owned(),
            message: Some(e.message),
        };
    }

    /// Records a successful start of instance `id`.
    pub(crate) fn started(&mut self, id: ContainerId, runtime: &str, at: String, now: Instant) {
        let previous = std::mem::replace(&mut self.view.state, State::Running { started_at: at });
        if let State::Terminated(t) = previous {
            self.view.last = Some(t);
        }
        self.view.restart_count = self.attempts.saturating_sub(1);
        self.view.container_id = Some(format!("{runtime}://{id}"));
        self.id = Some(id);
        self.started = Some(now);
        self.next_start = None;
    }

    /// Records an exit that will be followed by a restart after `delay`.
    pub(crate) fn back_off(&mut self, term: Terminated, delay: Duration, pod: &str) {
        self.view.last = Some(term.clone());
        self.view.state = if delay.is_zero() {
            State::Terminated(term)
        } else {
            State::Waiting {
                reason: "CrashLoopBackOff".to_owned(),
                message: Some(format!(
                    "back-off {}s restarting failed container={} pod={pod}",
                    delay.as_secs(),
                    self.view.name
                )),
            }
        };
    }
}

/// One pod the manager knows.
#[derive(Debug)]
pub(crate) struct Pod {
    pub(crate) def: PodDef,
    /// [`PodDef::fingerprint`] of the running spec.
    pub(crate) fingerprint: String,
    /// The spec to start once a replacement has stopped the old containers.
    pub(crate) next_def: Option<PodDef>,
    pub(crate) containers: Vec<Ctr>,
    pub(crate) start_time: String,
    pub(crate) transitions: Transitions,
    /// A terminal phase, once reached (never left, as in kubelet).
    pub(crate) sticky: Option<Phase>,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) sandbox_ready: bool,
    /// Materialised volumes by name; `None` until first needed.
    pub(crate) volumes: Option<BTreeMap<String, PathBuf>>,
    /// The status last sent (reports skip unchanged ones).
    pub(crate) last_report: Option<Value>,
    pub(crate) final_reported: bool,
}

impl Pod {
    /// A new pod whose containers are due now; `carried` holds `(attempts, restartCount)` by
    /// container name from a replaced spec.
    pub(crate) fn new(
        def: PodDef,
        carried: &BTreeMap<String, (u32, u32)>,
        now_text: String,
        now: Instant,
    ) -> Self {
        let containers = def
            .spec
            .containers
            .iter()
            .map(|c| {
                let (attempts, restart_count) = carried.get(&c.name).copied().unwrap_or((0, 0));
                Ctr {
                    view: ContainerView {
                        name: c.name.clone(),
                        image: c.image.clone(),
                        state: State::Waiting {
                            reason: CONTAINER_CREATING.to_owned(),
                            message: None,
                        },
                        last: None,
                        restart_count,
                        container_id: None,
                    },
                    id: None,
                    attempts,
                    backoff_level: 0,
                    next_start: Some(now),
                    started: None,
                }
            })
            .collect();
        Self {
            fingerprint: def.fingerprint(),
            def,
            next_def: None,
            containers,
            start_time: now_text,
            transitions: Transitions::new(),
            sticky: None,
            lifecycle: Lifecycle::Active,
            sandbox_ready: false,
            volumes: None,
            last_report: None,
            final_reported: false,
        }
    }

    /// True while any container instance runs.
    pub(crate) fn has_live(&self) -> bool {
        self.containers.iter().any(|c| c.id.is_some())
    }

    /// `(attempts, restartCount)` by container name, carried into a replacement.
    pub(crate) fn counters(&self) -> BTreeMap<String, (u32, u32)> {
        self.containers
            .iter()
            .map(|c| (c.view.name.clone(), (c.attempts, c.view.restart_count)))
            .collect()
    }

    pub(crate) fn sandbox_config(&self) -> SandboxConfig {
        SandboxConfig {
            namespace: self.def.namespace.clone(),
            name: self.def.name.clone(),
            uid: self.def.uid.clone(),
        }
    }

    pub(crate) fn views(&self) -> Vec<ContainerView> {
        self.containers.iter().map(|c| c.view.clone()).collect()
    }

    /// The phase of a pod stopped for deletion: `Succeeded` if every container exited 0.
    pub(crate) fn terminal_phase(&self) -> Phase {
        let all_ok = self
            .containers
            .iter()
            .all(|c| matches!(&c.view.state, State::Terminated(t) if t.exit_code == 0));
        if all_ok {
            Phase::Succeeded
        } else {
            Phase::Failed
        }
    }

    /// The `v1.PodStatus` now.
    pub(crate) fn status(&mut self, host_ip: Option<&str>, now: &str) -> Value {
        let views = self.views();
        let view = PodView {
            policy: self.def.spec.restart_policy,
            containers: &views,
            start_time: Some(&self.start_time),
            host_ip,
            sticky: self.sticky,
        };
        status::pod_status(&view, &mut self.transitions, now).0
    }
}
