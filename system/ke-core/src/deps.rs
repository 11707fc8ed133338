//! What a daemon takes from its caller: the seams that make it simulatable (house rule).

use crate::{Clock, Entropy, SystemClock};
use std::sync::Arc;

/// Sockets, wall clock and randomness, given by the caller: the daemon binaries pass the
/// tokio transport, the system clock and OS randomness; the simulator passes turmoil's
/// transport, a simulated clock and seeded randomness. One type for the API server,
/// cloudcore and edgecore (each re-exports it). `T` is the crate's transport (ke-net's
/// `Transport`; ke-core knows no sockets).
#[derive(Clone)]
pub struct Deps<T> {
    /// Where sockets come from.
    pub transport: T,
    /// Wall-clock time (Kubernetes timestamps, certificate validity, token expiry).
    pub clock: Arc<dyn Clock>,
    /// Randomness (UIDs, message ids, jitter, serials); seed it for determinism.
    pub entropy: Entropy,
}

impl<T> Deps<T> {
    /// `transport` and `entropy` with the system's wall clock (daemons, real-socket tests).
    pub fn with_system_clock(transport: T, entropy: Entropy) -> Self {
        Self {
            transport,
            clock: Arc::new(SystemClock),
            entropy,
        }
    }
}

impl<T> std::fmt::Debug for Deps<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}
