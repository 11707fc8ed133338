//! Serving: TLS (rustls) over the transport seam, HTTP/1.1 and HTTP/2 (hyper), graceful
//! shutdown. `Server::start` prepares storage and credentials and binds; `Server::serve` runs
//! until the shutdown future completes. A client in the same process can skip sockets, TLS and
//! HTTP altogether ([`Server::in_process_client`]).

use crate::{
    api::Api,
    auth::{Auth, User},
    http::{HttpState, metrics::Metrics, router},
    in_process::InProcess,
    openapi::OpenApi,
    pki,
    store::{Store, StoreOptions},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};

use ke_net::{Listener, Transport};
use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory cannot be used.
    #[error("data directory {path} is not usable")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Storage failed to open.
    #[error("cannot open the store")]
    Store(#[from] crate::store::StoreError),
    /// Initial objects could not be created.
    #[error("cannot initialise the API: {0}")]
    Init(crate::api::ApiError),
    /// Credentials could not be prepared.
    #[error("cannot prepare certificates")]
    Pki(#[from] pki::PkiError),
    /// TLS configuration failed.
    #[error("TLS configuration failed")]
    Tls(#[from] rustls::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database, certificates, token and kubeconfig live.
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// Extra names and addresses for the serving certificate.
    pub extra_sans: Vec<String>,
    /// Store tuning.
    pub store: StoreOptions,
    /// Keep the SQLite database in memory instead of `<data-dir>/apiserver.db`: the same
    /// statements and transactions, no file writes, nothing survives the process. For the
    /// simulator's embedded API server, which is never restarted; certificates and the
    /// kubeconfig still go to `data_dir`.
    pub database_in_memory: bool,
}

impl ServerConfig {
    /// Defaults for `data_dir`: listen on 127.0.0.1:6443.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            extra_sans: Vec::new(),
            store: StoreOptions::default(),
            database_in_memory: false,
        }
    }

    /// [`ServerConfig::new`] listening on a free loopback port, which
    /// [`Server::local_addr`] tells (tests, benchmarks, a server embedded in a program).
    pub fn on_free_loopback_port(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Self::new(data_dir)
        }
    }
}

/// What the server takes from its caller: sockets, wall clock and randomness.
pub use ke_core::Deps;

/// A bound, ready server.
pub struct Server<T: Transport> {
    state: Arc<HttpState>,
    listener: T::Listener,
    tls: TlsAcceptor,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    creds: pki::Credentials,
}

impl<T: Transport> std::fmt::Debug for Server<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn sans(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut s: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() {
        s.push(listen.ip().to_string());
    }
    s.extend(extra.iter().cloned());
    s.sort();
    s.dedup();
    s
}

/// The store: `<data-dir>/apiserver.db`, or an in-memory database.
fn open_store(cfg: &ServerConfig) -> Result<Store, crate::store::StoreError> {
    if cfg.database_in_memory {
        Store::open_sqlite_in_memory(cfg.store.clone())
    } else {
        Store::open(&cfg.data_dir.join("apiserver.db"), cfg.store.clone())
    }
}

impl<T: Transport> Server<T> {
    /// Opens storage, prepares credentials, binds and writes `<data-dir>/kubeconfig`.
    pub async fn start(cfg: ServerConfig, deps: Deps<T>) -> Result<Self, ServeError> {
        let dd = &cfg.data_dir;
        let dir_err = |source| ServeError::DataDir {
            path: dd.clone(),
            source,
        };
        std::fs::create_dir_all(dd).map_err(dir_err)?;
        probe_writable(dd).map_err(dir_err)?;
        let store = open_store(&cfg)?;
        let api =
            Api::new(store, deps.clock.clone(), deps.entropy.clone()).map_err(ServeError::Init)?;
        let creds = pki::load_or_create(
            dd,
            &sans(cfg.listen, &cfg.extra_sans),
            &*deps.clock,
            &deps.entropy,
        )?;
        let tls = tls_acceptor(&creds)?;
        let listener =
            deps.transport
                .bind(cfg.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: cfg.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let host = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        let kubeconfig = dd.join("kubeconfig");
        let kc = pki::kubeconfig(
            &format!("https://{host}"),
            &creds.ca_pem,
            &creds.admin_token,
            "admin",
        );
        pki::write_private(&kubeconfig, kc.as_bytes())?;
        let auth = Auth::default();
        auth.add_token(
            &creds.admin_token,
            User {
                name: "admin".into(),
                groups: vec!["system:masters".into()],
            },
        );
        let state = Arc::new(HttpState {
            api: Arc::new(api),
            auth,
            openapi: OpenApi::new(),
            shutdown: CancellationToken::new(),
            metrics: Metrics::default(),
            pod_streams: std::sync::RwLock::new(None),
        });
        tracing::info!(%addr, data_dir = %dd.display(), "apiserver listening");
        Ok(Self {
            state,
            listener,
            tls,
            addr,
            kubeconfig,
            creds,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The credentials in use (CA, admin token).
    pub fn credentials(&self) -> &pki::Credentials {
        &self.creds
    }

    /// The API behind the server (for in-process users such as cloudcore).
    pub fn api(&self) -> Arc<Api> {
        self.state.api.clone()
    }

    /// Routes `pods/log` and `pods/exec` through `streams` (cloudcore's CloudStream).
    pub fn set_pod_streams(&self, streams: Arc<dyn crate::streams::PodStreams>) {
        if let Ok(mut g) = self.state.pod_streams.write() {
            *g = Some(streams);
        }
    }

    /// The HTTP state (auth, metrics) for in-process users.
    pub fn state(&self) -> Arc<HttpState> {
        self.state.clone()
    }

    /// A kube client whose requests go straight into this server's router, authenticated as
    /// the admin: no socket, TLS or HTTP framing (see [`crate::in_process`]). For a client in
    /// the same process (cloudcore); kubectl and other processes use HTTPS and the kubeconfig.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// The admin token cannot be sent as a header value.
    pub fn in_process_client(&self) -> Result<kube::Client, http::header::InvalidHeaderValue> {
        Ok(InProcess::new(self.state.clone(), &self.creds.admin_token)?.into_client())
    }

    /// Serves until `shutdown` completes, then closes watches and drains connections.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let app = router(self.state.clone());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok((sock, peer)) => {
                        let tls = self.tls.clone();
                        let svc = TowerToHyperService::new(app.clone());
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let stream = match tls.accept(sock).await {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                            };
                            let builder = auto::Builder::new(TokioExecutor::new());
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                            if let Err(e) = watcher.watch(conn.into_owned()).await {
                                tracing::debug!(%peer, error = %e, "connection ended with error");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                },
            }
        }
        tracing::info!("apiserver shutting down");
        self.state.shutdown.cancel();
        drop(self.listener);
        let drain = graceful.shutdown();
        if tokio::time::timeout(std::time::Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 10 s; closing");
        }
        // Clients in this process (cloudcore's) may outlive the server; the database file
        // is released now, so a new server can open it.
        self.state.api.store.close();
    }
}

fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let p = dir.join(".write-probe");
    std::fs::write(&p, b"ok")?;
    std::fs::remove_file(&p)
}

fn tls_acceptor(creds: &pki::Credentials) -> Result<TlsAcceptor, ServeError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut creds.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(rustls::Error::General(e.to_string())))?;
    let key = rustls_pemfile::private_key(&mut creds.key_pem.as_bytes())
        .map_err(|e| ServeError::Tls(rustls::Error::General(e.to_string())))?
        .ok_or_else(|| ServeError::Tls(rustls::Error::General("no private key".into())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}
