//! Acceptance: the `apiserver` daemon binary as an operator runs it. Acknowledged writes
//! survive `kill -9` and resourceVersions keep growing across restarts; SIGTERM exits 0; bad
//! flags or an unusable data directory exit 64 with one line on stderr; only the admin token
//! is accepted.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams, WatchParams},
};
use serde_json::json;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};
use tokio::{process::Command, sync::mpsc};

const BIN: &str = env!("CARGO_BIN_EXE_apiserver");

/// Bound on every single wait, only so that a broken daemon fails the test instead of hanging
/// it; nothing here asserts on how long anything takes.
const WAIT: Duration = Duration::from_secs(60);

/// A loopback address with a port that was free a moment ago. The daemon must come back on
/// the same address after a restart, so the test picks the port itself: bind port 0, note the
/// port, release it. This is test code outside the transport seam, so std's listener is fine
/// (clippy.toml bans only tokio::net); another process taking the port in between is rare.
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address")
}

/// A running daemon; killed if dropped.
struct Daemon {
    child: tokio::process::Child,
    data: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `data` and `addr` (stderr appended to `log`) and waits until it
    /// answers `/healthz` through its own kubeconfig.
    async fn start(data: &Path, addr: SocketAddr, log: &Path) -> (Self, kube::Client) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn apiserver");
        let mut d = Self {
            child,
            data: data.to_owned(),
            log: log.to_owned(),
        };
        let client = tokio::time::timeout(WAIT, d.ready())
            .await
            .unwrap_or_else(|_| panic!("daemon not ready; log:\n{}", d.log_text()));
        (d, client)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn ready(&mut self) -> kube::Client {
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                panic!("daemon exited early ({st}); log:\n{}", self.log_text());
            }
            // The kubeconfig may be missing or half-written while the daemon starts.
            if let Ok(client) = admin_client(&self.data).await
                && status(&client, "/healthz").await == Some(200)
            {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> String {
        self.child.id().expect("daemon still running").to_string()
    }

    /// SIGKILL, then reap.
    async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let st = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("killed daemon is reaped")
            .expect("wait");
        assert_eq!(st.signal(), Some(9), "{st}");
    }

    /// SIGTERM (via kill(1)), then the exit status.
    async fn terminate(mut self) -> ExitStatus {
        let kill = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .await
            .expect("run kill");
        assert!(kill.success());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit after SIGTERM; log:\n{}", self.log_text()))
            .expect("wait")
    }
}

/// The kube config from `<data>/kubeconfig` as the daemon wrote it.
async fn admin_config(data: &Path) -> anyhow::Result<kube::Config> {
    let kc = kube::config::Kubeconfig::read_from(data.join("kubeconfig"))?;
    Ok(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)
}

async fn admin_client(data: &Path) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(admin_config(data).await?)?)
}

/// HTTP status of `GET path`; None if the request did not get an answer.
async fn status(client: &kube::Client, path: &str) -> Option<u16> {
    let req = http::Request::get(path)
        .body(kube::client::Body::empty())
        .expect("request");
    let resp = client.send(req).await.ok()?;
    Some(resp.status().as_u16())
}

fn rv_of(cm: &ConfigMap) -> u64 {
    let rv = cm.resource_version().expect("object has a resourceVersion");
    rv.parse().expect("resourceVersion is a number")
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": name}}))
        .expect("configmap")
}

/// Creates configmaps `<prefix>-0`, `<prefix>-1`, ... one at a time, reporting each
/// acknowledged (name, resourceVersion), until a write fails; returns the name whose write
/// failed (it may or may not have landed).
async fn write_until_error(
    api: Api<ConfigMap>,
    prefix: String,
    acks: mpsc::Sender<(String, u64)>,
) -> String {
    for i in 0..100_000 {
        let name = format!("{prefix}-{i}");
        match api.create(&PostParams::default(), &configmap(&name)).await {
            Ok(cm) => acks.send((name, rv_of(&cm))).await.expect("test listens"),
            Err(_) => return name,
        }
    }
    panic!("the daemon was never killed");
}

/// Checks every acknowledged object is stored with its acknowledged version; `maybe` names
/// writes whose outcome is unknown. Returns the list's resourceVersion.
async fn check_durable(
    api: &Api<ConfigMap>,
    acked: &BTreeMap<String, u64>,
    maybe: &[String],
) -> u64 {
    let list = api.list(&ListParams::default()).await.expect("list");
    let stored: BTreeMap<String, u64> = list
        .items
        .iter()
        .map(|c| (c.name_any(), rv_of(c)))
        .collect();
    for (name, rv) in acked {
        assert_eq!(stored.get(name), Some(rv), "acknowledged {name} at rv {rv}");
    }
    for name in stored.keys().filter(|n| !acked.contains_key(*n)) {
        assert!(maybe.contains(name), "{name} was never written");
    }
    let list_rv: u64 = list
        .metadata
        .resource_version
        .expect("list rv")
        .parse()
        .expect("number");
    let newest = stored.values().max().copied().unwrap_or(0);
    assert!(
        list_rv >= newest,
        "list rv {list_rv} below an item's {newest}"
    );
    list_rv
}

/// Goal: every acknowledged write survives `kill -9`, and resourceVersions keep growing
/// across restarts.
/// Method: start the daemon; a writer creates configmaps one by one and records each
/// acknowledged resourceVersion; after 20 acknowledgements the daemon gets SIGKILL while the
/// writer is still writing. Restart on the same data directory and address: every acknowledged
/// object must be there at its acknowledged version (only the write in flight at the kill may
/// also have landed), and a new write must get a version above every earlier one. Twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let work = tempfile::tempdir().expect("tempdir");
    let (data, log, addr) = (
        work.path().join("data"),
        work.path().join("log"),
        free_addr(),
    );
    let (mut daemon, mut client) = Daemon::start(&data, addr, &log).await;
    let (mut acked, mut maybe) = (BTreeMap::new(), Vec::new());
    for round in 0..2 {
        let (tx, mut rx) = mpsc::channel(1024);
        let api = Api::namespaced(client.clone(), "default");
        let writer = tokio::spawn(write_until_error(api, format!("round{round}"), tx));
        for _ in 0..20 {
            let (name, rv) = rx.recv().await.expect("writer acknowledges");
            acked.insert(name, rv);
        }
        daemon.kill9().await;
        maybe.push(writer.await.expect("writer"));
        while let Some((name, rv)) = rx.recv().await {
            acked.insert(name, rv);
        }

        (daemon, client) = Daemon::start(&data, addr, &log).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let list_rv = check_durable(&api, &acked, &maybe).await;
        let name = format!("after-round{round}");
        let cm = api
            .create(&PostParams::default(), &configmap(&name))
            .await
            .expect("create");
        let newest = acked.values().max().copied().unwrap_or(0);
        assert!(
            rv_of(&cm) > list_rv && rv_of(&cm) > newest,
            "{} vs {list_rv}/{newest}",
            rv_of(&cm)
        );
        acked.insert(name, rv_of(&cm));
    }
    check_durable(&Api::namespaced(client, "default"), &acked, &maybe).await;
    assert!(daemon.terminate().await.success());
}

/// Goal: SIGTERM stops the daemon cleanly: exit code 0, open watches end, data kept.
/// Method: start the daemon, create a configmap, open a watch, send SIGTERM with kill(1). The
/// daemon must exit 0 and the watch stream must end; a restart still has the configmap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero() {
    let work = tempfile::tempdir().expect("tempdir");
    let (data, log, addr) = (
        work.path().join("data"),
        work.path().join("log"),
        free_addr(),
    );
    let (daemon, client) = Daemon::start(&data, addr, &log).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &configmap("kept"))
        .await
        .expect("create");
    let watch = api
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch");
    let watching = tokio::spawn(async move {
        use futures::StreamExt as _;
        let mut watch = std::pin::pin!(watch);
        let mut n = 0;
        while let Some(Ok(_)) = watch.next().await {
            n += 1;
        }
        n
    });

    let st = daemon.terminate().await;
    assert_eq!(st.code(), Some(0), "{st}");
    let seen = tokio::time::timeout(WAIT, watching)
        .await
        .expect("the watch ends with the daemon")
        .expect("watch task");
    assert!(seen >= 1, "the watch had delivered the existing configmap");

    let (daemon, client) = Daemon::start(&data, addr, &log).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.get("kept").await.expect("data kept after SIGTERM");
    assert!(daemon.terminate().await.success());
}

/// Runs the binary with `args` and returns (exit code, stderr); killed if still running at
/// the deadline (an invocation that should fail but starts serving).
async fn run_bad(args: &[&str]) -> (Option<i32>, String) {
    let run = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("apiserver {args:?} did not exit"))
        .expect("run apiserver");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Goal: bad flags and unusable data directories fail fast with exit code 64 (EX_USAGE) and
/// exactly one line on stderr that names the problem.
/// Method: run the binary for each bad invocation: unknown flag, missing `--data-dir`,
/// unparsable `--listen`, a `--listen` address not on this host, a data directory that is a
/// regular file, one below a regular file, and an existing directory that cannot be written
/// even by root (`/proc/self`). Check the code, the single line, and what it mentions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_64_with_one_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("data");
    let file = work.path().join("plain-file");
    std::fs::write(&file, b"not a directory").expect("write file");
    let below_file = file.join("data");
    let (dir, file, below_file) = (
        dir.to_str().expect("utf-8"),
        file.to_str().expect("utf-8"),
        below_file.to_str().expect("utf-8"),
    );
    let any = "127.0.0.1:0";
    let cases: &[(&[&str], &str)] = &[
        (&["--data-dir", dir, "--bogus"], "--bogus"),
        (&["--listen", any], "--data-dir"),
        (
            &["--data-dir", dir, "--listen", "not-an-address"],
            "not-an-address",
        ),
        // TEST-NET-1 (RFC 5737): never an address of this host, so binding fails.
        (
            &["--data-dir", dir, "--listen", "192.0.2.1:6443"],
            "192.0.2.1:6443",
        ),
        (&["--data-dir", file, "--listen", any], file),
        (&["--data-dir", below_file, "--listen", any], below_file),
        (&["--data-dir", "/proc/self", "--listen", any], "/proc/self"),
    ];
    let mut problems = Vec::new();
    for (args, mention) in cases {
        let (code, stderr) = run_bad(args).await;
        let lines: Vec<&str> = stderr.lines().collect();
        if code != Some(64) {
            problems.push(format!(
                "{args:?}: exit {code:?}, want 64; stderr {stderr:?}"
            ));
        } else if lines.len() != 1 || !stderr.ends_with('\n') || lines[0].trim().is_empty() {
            problems.push(format!(
                "{args:?}: stderr is not exactly one line: {stderr:?}"
            ));
        } else if !lines[0].contains(mention) {
            problems.push(format!("{args:?}: {stderr:?} does not mention {mention:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "bad invocations:\n{}",
        problems.join("\n")
    );
}

/// Goal: the API requires the admin token; health checks do not.
/// Method: against the daemon, `GET /api` with the kubeconfig as written (admin token) is 200;
/// the same config with the token removed, or replaced by a wrong one, gets 401, while
/// `/healthz` stays 200 without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_admin_token_is_accepted() {
    let work = tempfile::tempdir().expect("tempdir");
    let (data, log, addr) = (
        work.path().join("data"),
        work.path().join("log"),
        free_addr(),
    );
    let (daemon, admin) = Daemon::start(&data, addr, &log).await;
    assert_eq!(status(&admin, "/api").await, Some(200));

    let mut cfg = admin_config(&data).await.expect("config");
    cfg.auth_info.token = None;
    let anonymous = kube::Client::try_from(cfg).expect("client");
    assert_eq!(status(&anonymous, "/api").await, Some(401));
    assert_eq!(
        status(&anonymous, "/api/v1/namespaces/default/configmaps").await,
        Some(401)
    );
    assert_eq!(status(&anonymous, "/healthz").await, Some(200));

    let mut cfg = admin_config(&data).await.expect("config");
    cfg.auth_info.token = Some("0123456789abcdef".to_owned().into());
    let wrong = kube::Client::try_from(cfg).expect("client");
    assert_eq!(status(&wrong, "/api").await, Some(401));

    assert!(daemon.terminate().await.success());
}
