//! A private containerd for tests: its own root, state and socket in a temporary directory,
//! with two local images built from Debian's busybox-static (no registry is reachable).
//! Shared by ke-edge's and keadm's tests (`#[path]`-included).
//!
//! - CRI plugin: `restrict_oom_score_adj = true` (without it runc fails here with `nsexec:
//!   failed to update /proc/self/oom_score_adj: Permission denied`), `sandbox_image` = the
//!   local pause image, CNI directories that stay empty: pods use the node's network, so CNI
//!   is never called.
//! - snapshotter: overlayfs if an overlay mount works in the directory, else native.
//! - images: [`BUSYBOX`] (`/bin/busybox` plus applet symlinks) and [`PAUSE`] (the same layer,
//!   running a shell that sleeps until SIGTERM), written as OCI image layouts (layer tar,
//!   config, manifest, index, SHA-256 digests) and imported with `ctr images import` into the
//!   `k8s.io` namespace.
//!
//! A missing containerd, runc, ctr or busybox is a test failure saying so: CI installs them
//! (`ci/deps.sh`).

#![allow(dead_code, reason = "each test binary uses part of the fixture")]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The image containers run.
pub(crate) const BUSYBOX: &str = "edgefleet.local/busybox:1";
/// The sandbox (pause) image.
pub(crate) const PAUSE: &str = "edgefleet.local/pause:1";

const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "ls", "true", "false", "env", "hostname", "date", "ps",
];

/// A running private containerd; stopped (with its containers) on drop.
pub(crate) struct Containerd {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) socket: PathBuf,
    child: Child,
}

fn require(bin: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{bin} is not installed (Debian package {package}): these tests need a real \
         containerd (Debian packages containerd, runc and busybox-static; ci/deps.sh \
         installs them)"
    );
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    out.split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_owned()
}

fn overlay_works(dir: &Path) -> bool {
    let p = dir.join("overlay-probe");
    for d in ["l", "u", "w", "m"] {
        fs::create_dir_all(p.join(d)).expect("probe dirs");
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        p.join("l").display(),
        p.join("u").display(),
        p.join("w").display()
    );
    let ok = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(p.join("m"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let _ = Command::new("umount").arg(p.join("m")).status();
    }
    let _ = fs::remove_dir_all(&p);
    ok
}

impl Containerd {
    /// Starts containerd and imports both images.
    pub(crate) fn start() -> Self {
        let containerd = require("containerd", "containerd");
        require("runc", "runc");
        require("ctr", "containerd");
        require("containerd-shim-runc-v2", "containerd");
        assert!(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox is missing: install Debian's busybox-static (ci/deps.sh does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ctrd")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path();
        let socket = d.join("c.sock");
        let snapshotter = if overlay_works(d) {
            "overlayfs"
        } else {
            "native"
        };
        for sub in ["cni-bin", "cni-conf"] {
            fs::create_dir_all(d.join(sub)).expect("cni dirs");
        }
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            cni_bin = d.join("cni-bin").display(),
            cni_conf = d.join("cni-conf").display(),
        );
        fs::write(d.join("config.toml"), config).expect("config");
        let log = fs::File::create(d.join("containerd.log")).expect("log");
        let child = Command::new(containerd)
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawning containerd");
        let me = Self { dir, socket, child };
        me.wait_ready();
        me.import(BUSYBOX, &["sh"]);
        me.import(
            PAUSE,
            &[
                "sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done",
            ],
        );
        me
    }

    /// `unix://…` of the CRI socket.
    pub(crate) fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// containerd's log so far (for assertion messages).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a").arg(&self.socket).args(["-n", "k8s.io"]);
        cmd
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "waits on a real process, in wall time"
    )]
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new("ctr")
                .arg("-a")
                .arg(&self.socket)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Builds an OCI image layout of busybox running `cmd` and imports it as `reference`.
    #[expect(
        clippy::too_many_lines,
        reason = "one linear recipe: rootfs, blobs, layout"
    )]
    fn import(&self, reference: &str, cmd: &[&str]) {
        let base = self
            .dir
            .path()
            .join("images")
            .join(reference.replace(['/', ':'], "_"));
        let rootfs = base.join("rootfs");
        let blobs = base.join("layout/blobs/sha256");
        fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
        fs::create_dir_all(rootfs.join("tmp")).expect("rootfs tmp");
        fs::create_dir_all(&blobs).expect("blobs");
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                .expect("applet link");
        }
        let layer = base.join("layer.tar");
        run_ok(
            Command::new("tar")
                .args([
                    "--sort=name",
                    "--mtime=@0",
                    "--owner=0",
                    "--group=0",
                    "--numeric-owner",
                ])
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&layer)
                .arg("."),
        );
        let layer_digest = sha256(&layer);
        let layer_size = fs::metadata(&layer).expect("layer").len();
        fs::rename(&layer, blobs.join(&layer_digest)).expect("layer blob");
        let cmd_json = cmd
            .iter()
            .map(|a| format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(",");
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":[{cmd_json}]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_digest}"]}}}}"#
        );
        let (config_digest, config_size) = blob(&blobs, config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{layer_digest}","size":{layer_size}}}]}}"#
        );
        let (manifest_digest, manifest_size) = blob(&blobs, manifest.as_bytes());
        let tag = reference.rsplit(':').next().unwrap_or("latest");
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_digest}","size":{manifest_size},"annotations":{{"io.containerd.image.name":"{reference}","org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#
        );
        let layout = base.join("layout");
        fs::write(layout.join("index.json"), index).expect("index");
        fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("layout");
        let tarball = base.join("image.tar");
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&layout)
                .arg("-cf")
                .arg(&tarball)
                .arg("."),
        );
        run_ok(self.ctr().args(["images", "import"]).arg(&tarball));
        let listed = run_ok(self.ctr().args(["images", "ls", "-q"]));
        assert!(
            listed.lines().any(|l| l == reference),
            "{reference} not imported; images: {listed}"
        );
    }

    /// Ids of the running containers (tasks) in the k8s.io namespace, pause included.
    pub(crate) fn running_tasks(&self) -> Vec<String> {
        let out = run_ok(self.ctr().args(["tasks", "ls"]));
        out.lines()
            .skip(1)
            .filter(|l| l.contains("RUNNING"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    /// Kills every task, then containerd and its shims, and unmounts what is left.
    fn teardown(&mut self) {
        if let Ok(out) = self.ctr().args(["tasks", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self
                    .ctr()
                    .args(["tasks", "kill", "-a", "-s", "SIGKILL", id])
                    .status();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
        let marker = self.socket.display().to_string();
        if let Ok(procs) = fs::read_dir("/proc") {
            for p in procs.flatten() {
                let cmdline = fs::read(p.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline);
                if cmdline.contains("containerd-shim") && cmdline.contains(&marker) {
                    let pid = p.file_name().to_string_lossy().into_owned();
                    let _ = Command::new("kill").args(["-9", &pid]).status();
                }
            }
        }
        let prefix = self.dir.path().display().to_string();
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

fn blob(blobs: &Path, bytes: &[u8]) -> (String, usize) {
    let tmp = blobs.join("tmp");
    fs::write(&tmp, bytes).expect("blob");
    let digest = sha256(&tmp);
    fs::rename(&tmp, blobs.join(&digest)).expect("blob rename");
    (digest, bytes.len())
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown();
    }
}
