//! Shared fixtures for the API server's integration tests: an in-process server on a free
//! loopback port with its own data directory, and a runner for the real `kubectl`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use ke_apiserver::{Deps, Server, ServerConfig, api::Api, store::StoreOptions};
use ke_core::{Entropy, Seed};
use ke_net::TokioTransport;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    sync::Arc,
};
use tokio::{io::AsyncWriteExt, sync::oneshot, task::JoinHandle};

pub struct TestServer {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub api: Arc<Api>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts a server on `dir` (created if needed) listening on `listen`.
pub async fn start_in(dir: &Path, listen: SocketAddr, store: StoreOptions) -> TestServer {
    let mut cfg = ServerConfig::new(dir);
    cfg.listen = listen;
    cfg.store = store;
    let deps = Deps::with_system_clock(
        TokioTransport,
        Entropy::seeded(Seed(42), dir.to_string_lossy().as_ref()),
    );
    let server = Server::start(cfg, deps).await.expect("server starts");
    let (tx, rx) = oneshot::channel::<()>();
    let addr = server.local_addr();
    let kubeconfig = server.kubeconfig_path().to_owned();
    let api = server.api();
    let task = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    TestServer {
        dir: dir.to_owned(),
        addr,
        kubeconfig,
        api,
        stop: Some(tx),
        task: Some(task),
    }
}

/// A fresh server in a new temporary directory.
pub async fn start() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_in(
        dir.path(),
        "127.0.0.1:0".parse().expect("address"),
        StoreOptions::default(),
    )
    .await;
    (dir, s)
}

impl TestServer {
    /// Stops the server and waits until it has shut down.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }

    /// A kube-rs client for this server, from the kubeconfig it wrote.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(cfg).expect("client")
    }

    /// `kubectl` with this server's kubeconfig and a private HOME (so no discovery cache is
    /// shared between tests).
    pub fn kubectl_cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(kubectl_path());
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().await.expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout; panics with stderr when it fails.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with `input` on stdin (`apply -f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut c = self.kubectl_cmd(args);
        c.stdin(Stdio::piped());
        let mut child = c.spawn().expect("kubectl runs");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write stdin");
        drop(stdin);
        child.wait_with_output().await.expect("kubectl output")
    }

    pub async fn kubectl_stdin_ok(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_stdin(args, input).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The real kubectl. Its absence fails the test with a message; it is never skipped.
pub fn kubectl_path() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    found.expect(
        "kubectl (1.32) is required by this test and is not on PATH; it ships with the machine \
         image (google-cloud-sdk). Install it and re-run; this test is never skipped.",
    )
}
