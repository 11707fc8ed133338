//! `keadm debug check`: one line per check, exit 1 if any failed.

use std::{
    fs,
    net::{SocketAddr, ToSocketAddrs},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use ke_cloud::{certs::CertAuthority, config::CloudCoreConfig};
use ke_core::{Clock, SystemClock};
use ke_edge::{certificate, config::EdgeCoreConfig};
use ke_net::{TokioTransport, Transport as _};
use rustls::pki_types::ServerName;

use crate::{
    daemon::{CLOUDCORE, EDGECORE, http_get},
    say,
};

/// The results so far.
#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, name: &str, result: Result<String, String>) {
        match result {
            Ok(detail) => say(&format!("[ok]   {name}: {detail}")),
            Err(detail) => {
                self.failed += 1;
                say(&format!("[FAIL] {name}: {detail}"));
            }
        }
    }
}

pub(crate) async fn run(dir: &Path) -> anyhow::Result<()> {
    let mut r = Report::default();
    r.line("data dir", data_dir(dir));
    let cloud = CLOUDCORE.config_file(dir);
    let edge = EDGECORE.config_file(dir);
    if !cloud.exists() && !edge.exists() {
        r.line(
            "configuration",
            Err(format!(
                "neither {} nor {} exists",
                cloud.display(),
                edge.display()
            )),
        );
    }
    if cloud.exists() {
        check_cloud(&mut r, dir, &cloud).await;
    }
    if edge.exists() {
        check_edge(&mut r, dir, &edge).await;
    }
    if r.failed > 0 {
        anyhow::bail!("{} check(s) failed", r.failed);
    }
    say("all checks passed");
    Ok(())
}

fn data_dir(dir: &Path) -> Result<String, String> {
    let probe = dir.join(".keadm-check");
    fs::write(&probe, b"ok").map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    let _ = fs::remove_file(&probe);
    Ok(format!("{} is writable", dir.display()))
}

async fn check_cloud(r: &mut Report, dir: &Path, path: &Path) {
    let cfg = match load(path, CloudCoreConfig::from_yaml, CloudCoreConfig::validate) {
        Ok(c) => {
            r.line("cloudcore.yaml", Ok("valid".into()));
            c
        }
        Err(e) => return r.line("cloudcore.yaml", Err(e)),
    };
    let hub = &cfg.modules.cloud_hub;
    let ca = fs::read_to_string(&hub.tls_ca_file)
        .and_then(|c| fs::read_to_string(&hub.tls_ca_key_file).map(|k| (c, k)))
        .map_err(|e| format!("{}: {e}", hub.tls_ca_file))
        .and_then(|(c, k)| CertAuthority::from_pem(&c, &k).map_err(|e| format!("{e:#}")));
    r.line(
        "CA",
        ca.map(|_| format!("{} loads and matches its key", hub.tls_ca_file)),
    );
    r.line(
        "server certificate",
        cert_valid(Path::new(&hub.tls_cert_file)),
    );
    let running = CLOUDCORE.running(dir);
    r.line(
        "cloudcore process",
        running
            .map(|p| format!("running (pid {p})"))
            .ok_or_else(|| "not running".to_owned()),
    );
    let ports = [
        (
            "websocket port",
            format!("{}:{}", hub.websocket.address, hub.websocket.port),
        ),
        (
            "certificate port",
            format!("{}:{}", hub.https.address, hub.https.port),
        ),
        (
            "API server port",
            cfg.kube_api_config.embedded.bind_address.clone(),
        ),
        (
            "metrics port",
            cfg.common_config.monitor_server.bind_address.clone(),
        ),
    ];
    for (name, addr) in ports {
        r.line(name, port(&addr, running.is_some()).await);
    }
}

async fn check_edge(r: &mut Report, dir: &Path, path: &Path) {
    let cfg = match load(path, EdgeCoreConfig::from_yaml, EdgeCoreConfig::validate) {
        Ok(c) => {
            r.line("edgecore.yaml", Ok("valid".into()));
            c
        }
        Err(e) => return r.line("edgecore.yaml", Err(e)),
    };
    let hub = &cfg.modules.edge_hub;
    let paths = certificate::CertPaths {
        ca: PathBuf::from(&hub.tls_ca_file),
        cert: PathBuf::from(&hub.tls_cert_file),
        key: PathBuf::from(&hub.tls_private_key_file),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let creds = certificate::load(&paths, cfg.node_name(), &*clock);
    r.line(
        "node certificate",
        creds
            .as_ref()
            .map(|c| format!("for {} until {}", c.node, c.not_after))
            .map_err(|e| format!("{e} (edgecore fetches one with the token on start)")),
    );
    let running = EDGECORE.running(dir);
    r.line(
        "edgecore process",
        running
            .map(|p| format!("running (pid {p})"))
            .ok_or_else(|| "not running".to_owned()),
    );
    r.line(
        "cloudcore reachable (mTLS)",
        match &creds {
            Ok(c) => handshake(&hub.websocket.server, c, clock.clone()).await,
            Err(_) => tcp(&hub.websocket.server).await,
        },
    );
    let cert_host = hub.http_server.trim_start_matches("https://").to_owned();
    r.line("certificate server reachable", tcp(&cert_host).await);
    if cfg.monitor_server.enable {
        let addr = cfg.monitor_server.bind_address.clone();
        r.line("metrics port", port(&addr, running.is_some()).await);
    }
}

fn load<C>(
    path: &Path,
    parse: impl Fn(&str) -> Result<C, ke_core::config::ConfigError>,
    validate: impl Fn(&C) -> Result<(), ke_core::config::ConfigError>,
) -> Result<C, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = parse(&text).map_err(|e| e.to_string())?;
    validate(&cfg).map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn cert_valid(path: &Path) -> Result<String, String> {
    let pem = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or("no certificate in the file")?
        .map_err(|e| e.to_string())?;
    let (_, x) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
    let now = SystemClock.now_utc().unix_timestamp();
    let v = x.validity();
    if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
        return Err(format!(
            "not valid now (valid {} to {})",
            v.not_before, v.not_after
        ));
    }
    Ok(format!("valid until {}", v.not_after))
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))
}

async fn tcp(addr: &str) -> Result<String, String> {
    let a = resolve(addr)?;
    match tokio::time::timeout(Duration::from_secs(5), TokioTransport.connect(a)).await {
        Ok(Ok(_)) => Ok(format!("{a} accepts connections")),
        Ok(Err(e)) => Err(format!("{a}: {e}")),
        Err(_) => Err(format!("{a}: timed out")),
    }
}

/// A listening port if the daemon runs; a free one if it does not.
async fn port(addr: &str, running: bool) -> Result<String, String> {
    let a = resolve(addr)?;
    if running {
        if a.port() > 0 && addr.ends_with(&a.port().to_string()) && http_or_tcp(a).await {
            return Ok(format!("{a} is listening"));
        }
        return Err(format!("{a} is not listening"));
    }
    match TokioTransport.bind(a).await {
        Ok(_) => Ok(format!("{a} is free")),
        Err(e) => Err(format!("{a} is in use by another process: {e}")),
    }
}

async fn http_or_tcp(a: SocketAddr) -> bool {
    http_get(a, "/healthz").await.is_ok() || TokioTransport.connect(a).await.is_ok()
}

/// TCP, TLS with the node's certificate, and the server certificate checked against the CA.
async fn handshake(
    addr: &str,
    creds: &certificate::EdgeCredentials,
    clock: Arc<dyn Clock>,
) -> Result<String, String> {
    let a = resolve(addr)?;
    let tls = creds.client_config(clock).map_err(|e| e.to_string())?;
    let name = ServerName::from(a.ip());
    let dial = async {
        let s = TokioTransport.connect(a).await.map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(tls)
            .connect(name, s)
            .await
            .map_err(|e| format!("TLS: {e}"))
    };
    match tokio::time::timeout(Duration::from_secs(5), dial).await {
        Ok(Ok(_)) => Ok(format!(
            "{a}: TLS handshake with the node certificate succeeded"
        )),
        Ok(Err(e)) => Err(format!("{a}: {e}")),
        Err(_) => Err(format!("{a}: timed out")),
    }
}
