//! What every rustls configuration of the workspace shares: the crypto [`provider`], and
//! certificate validity judged by the [`Clock`] seam instead of the host clock (a rustls
//! [`TimeProvider`], [`ClockTime`], and the conversion it rests on, [`unix_time`]). Used by
//! cloudcore's certificate server and CloudHub (ke-cloud), edgecore's certificate bootstrap
//! and EdgeHub (ke-edge) and the kube client, so that under the simulator every TLS handshake
//! sees simulated time.

use ke_core::Clock;
use rustls::{
    CipherSuite, SupportedCipherSuite, crypto::CryptoProvider, pki_types::UnixTime,
    time_provider::TimeProvider,
};
use std::{sync::Arc, time::Duration};

/// ring's provider with its cipher suites in Go's order on machines with AES instructions:
/// AES-128-GCM before AES-256-GCM before ChaCha20, TLS 1.3 before 1.2.
///
/// A client's list is its preference, and rustls servers follow the client's order. ring's
/// default puts AES-256-GCM-SHA384 first, so our edges chose a different suite from the one
/// KubeEdge's edgecore and kubectl (Go) choose, and paid for it: SHA-384 (SHA-512's
/// compression) in every handshake's key schedule and 14 AES rounds instead of 10 for every
/// record. The set of suites is ring's default, unchanged.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(go_order);
    Arc::new(p)
}

/// The rank of a suite in Go's order (a stable sort keeps ring's order among equals: ECDSA
/// before RSA).
fn go_order(s: &SupportedCipherSuite) -> (u8, u8) {
    let version = match s {
        SupportedCipherSuite::Tls13(_) => 0,
        SupportedCipherSuite::Tls12(_) => 1,
    };
    let cipher = match s.suite() {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        CipherSuite::TLS13_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    };
    (version, cipher)
}

/// `clock`'s time as rustls wants it (times before 1970 clamp to the epoch).
pub fn unix_time(clock: &dyn Clock) -> UnixTime {
    let secs = u64::try_from(clock.now_utc().unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// A rustls time source backed by a [`Clock`].
#[derive(Clone)]
pub struct ClockTime(pub Arc<dyn Clock>);

impl std::fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClockTime")
    }
}

impl TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(unix_time(&*self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ke_core::FixedClock;

    /// Goal: the provider offers exactly ring's suites, AES-128-GCM first in each TLS version,
    /// TLS 1.3 first. Method: compare with ring's default provider.
    #[test]
    fn suites_are_rings_in_gos_order() {
        let ours: Vec<CipherSuite> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        let mut rings: Vec<CipherSuite> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(ours[0], CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(ours[1], CipherSuite::TLS13_AES_256_GCM_SHA384);
        let tls12 = ours
            .iter()
            .position(|s| *s == CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
        let first_tls12 = ours
            .iter()
            .position(|s| format!("{s:?}").starts_with("TLS_"));
        assert_eq!(tls12, first_tls12, "TLS 1.2 also starts with AES-128-GCM");
        let mut sorted = ours.clone();
        sorted.sort_by_key(|s| u16::from(*s));
        rings.sort_by_key(|s| u16::from(*s));
        assert_eq!(sorted, rings, "same suites as ring's default");
    }

    /// Goal: rustls sees the seam's time, whole seconds, and pre-1970 clamps to the epoch.
    /// Method: a fixed clock moved by hand, read through `ClockTime`.
    #[test]
    fn follows_the_clock_and_clamps_before_1970() {
        let clock = FixedClock::new(1_754_450_000);
        let time = ClockTime(Arc::new(clock.clone()));
        let at = |secs| Some(UnixTime::since_unix_epoch(Duration::from_secs(secs)));
        assert_eq!(time.current_time(), at(1_754_450_000));
        clock.advance_nanos(1_500_000_000);
        assert_eq!(time.current_time(), at(1_754_450_001));
        let before = ClockTime(Arc::new(FixedClock::new(-10)));
        assert_eq!(before.current_time(), at(0));
    }
}
