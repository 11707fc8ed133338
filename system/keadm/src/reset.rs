//! `keadm reset`.

use std::{fs, path::Path, time::Duration};

use anyhow::{Context as _, bail};

use crate::{
    daemon::{CLOUDCORE, EDGECORE},
    say,
};

/// What keadm creates in a data dir; reset removes these and nothing else.
const STATE: [&str; 12] = [
    "cloudcore.yaml",
    "cloudcore.pid",
    "cloudcore.log",
    "edgecore.yaml",
    "edgecore.pid",
    "edgecore.log",
    "edgecore.db",
    "edgecore.db-wal",
    "edgecore.db-shm",
    "apiserver",
    "ca",
    "certs",
];

pub(crate) async fn run(dir: &Path) -> anyhow::Result<()> {
    let managed = [CLOUDCORE, EDGECORE]
        .iter()
        .any(|d| d.config_file(dir).exists() || d.pid_file(dir).exists());
    if !managed {
        bail!(
            "{} holds no cloudcore.yaml or edgecore.yaml: not a keadm data dir",
            dir.display()
        );
    }
    for d in [EDGECORE, CLOUDCORE] {
        if d.stop(dir, Duration::from_secs(15)).await {
            say(&format!("stopped {}", d.name));
        }
    }
    for name in STATE.iter().chain(["edged"].iter()) {
        let p = dir.join(name);
        let r = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else if p.exists() {
            fs::remove_file(&p)
        } else {
            continue;
        };
        r.with_context(|| format!("removing {}", p.display()))?;
    }
    let _ = fs::remove_dir(dir); // only if now empty
    say(&format!("reset {}", dir.display()));
    Ok(())
}
