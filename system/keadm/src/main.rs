//! `keadm`: sets up edgefleet on a machine, with KubeEdge's commands and flags.
//!
//! - `keadm init --advertise-address IP --data-dir DIR`: writes `DIR/cloudcore.yaml` and the
//!   certificates' places, starts `cloudcore` in the background (`DIR/cloudcore.pid`,
//!   `DIR/cloudcore.log`), waits until it serves, prints the kubeconfig and the join command.
//! - `keadm gettoken --data-dir DIR`: prints a join token from the CA in `DIR`.
//! - `keadm join --cloudcore-ipport IP:PORT --token T --edgenode-name NAME --data-dir DIR`:
//!   writes `DIR/edgecore.yaml`, starts `edgecore` in the background (`DIR/edgecore.pid`,
//!   `DIR/edgecore.log`), returns once the node is registered.
//! - `keadm reset --data-dir DIR`: stops the daemon started from `DIR` and removes its state.
//! - `keadm debug check [--data-dir DIR]`: checks ports, the data dir, certificates and
//!   connectivity, one line per check.
//!
//! Exit codes: 0 success, 1 failure (with the reason and, for a daemon that did not come up,
//! the end of its log), 64 bad usage.

mod check;
mod daemon;
mod init;
mod join;
mod reset;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use ke_net::process::{UsageDetail, parse_args};

/// Sets up edgefleet's cloudcore and edgecore (KubeEdge's keadm).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Set up and start cloudcore (with the embedded API server) on this machine.
    Init(init::InitArgs),
    /// Print a join token for edges.
    Gettoken {
        /// The directory given to `keadm init`.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Set up and start edgecore, joining it to a cloudcore.
    Join(join::JoinArgs),
    /// Stop the daemon started from a data dir and remove its state.
    Reset {
        /// The directory given to `keadm init` or `keadm join`.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Diagnostics.
    Debug {
        #[command(subcommand)]
        cmd: DebugCmd,
    },
}

#[derive(Debug, Subcommand)]
enum DebugCmd {
    /// Check ports, the data dir, certificates and connectivity.
    Check {
        /// The directory given to `keadm init` or `keadm join`.
        #[arg(long, default_value = "/etc/kubeedge")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let args: Args = match parse_args("keadm", UsageDetail::FirstLine) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keadm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match args.cmd {
            Cmd::Init(a) => init::run(a).await,
            Cmd::Gettoken { data_dir } => init::gettoken(&data_dir),
            Cmd::Join(a) => join::run(a).await,
            Cmd::Reset { data_dir } => reset::run(&data_dir).await,
            Cmd::Debug {
                cmd: DebugCmd::Check { data_dir },
            } => check::run(&data_dir).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keadm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a line of keadm's output.
fn say(line: &str) {
    #[expect(clippy::print_stdout, reason = "keadm's output is for the user")]
    {
        println!("{line}");
    }
}
