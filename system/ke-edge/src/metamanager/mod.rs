//! MetaManager: the edge's SQLite store of everything the cloud sent, persisted *before* the
//! ACK, and the local source of truth for edged and the device twin while offline.
//!
//! - [`store`]: [`MetaStore`], KubeEdge's `meta` table plus per-object UID/resourceVersion and
//!   delete tombstones, so writes are ordered and idempotent; durability notes.
//! - `change` (private): reading a downstream message as a store write (pure).
//! - [`task`]: [`MetaManager`], the task that applies downstream messages, ACKs after the
//!   commit, forwards pod/configmap/secret changes to edged and answers local queries.

mod change;
pub mod store;
pub mod task;

use std::path::PathBuf;

pub use store::{Applied, Durability, MetaStore, Observed, Observer, TOMBSTONES_MAX};
pub use task::MetaManager;

/// Errors of the MetaManager module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be opened. Not retryable without operator action.
    #[error("opening the meta database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A SQLite statement failed (disk full, I/O error, lock timeout). Retryable: the cloud
    /// resends an un-ACKed message.
    #[error("meta database operation failed: {op}")]
    Sqlite {
        /// What was being done.
        op: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value is not JSON (the file was edited or corrupted).
    #[error("stored value at {key} is not JSON")]
    Corrupt {
        /// The `meta.key`.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The operation is not `insert`, `update` or `delete`.
    #[error("operation {operation:?} is not a store write")]
    NotAWrite {
        /// The operation.
        operation: String,
    },
    /// The resource does not name one object (`<namespace>/<type>/<name>`).
    #[error("message {msg_id} does not name one object (resource {resource:?})")]
    NoKey {
        /// The message id.
        msg_id: String,
        /// The resource string.
        resource: String,
    },
    /// An insert or update whose content is not a JSON object.
    #[error("message {msg_id} carries no JSON object")]
    NotAnObject {
        /// The message id.
        msg_id: String,
    },
    /// A channel the task sends on was closed by its receiver.
    #[error("the {channel} channel is closed")]
    ChannelClosed {
        /// Which channel.
        channel: &'static str,
    },
}

impl Error {
    /// True for errors of the message itself (a resend would fail the same way).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Self::NotAWrite { .. } | Self::NoKey { .. } | Self::NotAnObject { .. }
        )
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
