//! Seeded randomness. One `u64` seed per run; every component derives a named stream from it,
//! so adding a component never shifts another component's numbers.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// The run's root seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed(pub u64);

impl Seed {
    /// A portable generator for the stream named `name`.
    pub fn derive(self, name: &str) -> ChaCha8Rng {
        let mut h = Sha256::new();
        h.update(self.0.to_le_bytes());
        h.update(name.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        ChaCha8Rng::from_seed(digest)
    }
}

/// A shareable source of random bytes (UIDs, tokens, message ids).
#[derive(Debug, Clone)]
pub struct Entropy {
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl Entropy {
    /// Entropy from a seeded, named stream: same seed and name, same bytes.
    pub fn seeded(seed: Seed, name: &str) -> Self {
        Self {
            rng: Arc::new(Mutex::new(seed.derive(name))),
        }
    }

    /// Entropy for a real daemon, seeded from the operating system.
    pub fn from_os() -> Self {
        Self {
            rng: Arc::new(Mutex::new(ChaCha8Rng::from_os_rng())),
        }
    }

    /// An independent stream for a sub-component, drawn from this one: seeded entropy forks
    /// deterministically, OS entropy stays unpredictable.
    pub fn fork(&self, name: &str) -> Self {
        let mut h = Sha256::new();
        h.update(self.next_u64().to_le_bytes());
        h.update(name.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        Self {
            rng: Arc::new(Mutex::new(ChaCha8Rng::from_seed(digest))),
        }
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&self, buf: &mut [u8]) {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rng.fill_bytes(buf);
    }

    /// A random `u64`.
    pub fn next_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }

    /// A random RFC 4122 version-4 UUID string (from this stream, never from the OS directly).
    pub fn uuid_v4(&self) -> String {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        // Hex digits written straight into the string: seventeen `format!`s per id (every
        // message has one) were 4% of a simulated devices run's instructions.
        let mut hex = [0u8; 32];
        hex::encode_to_slice(b, &mut hex).expect("invariant: 16 bytes are 32 hex digits");
        let mut id = String::with_capacity(36);
        for (i, digit) in hex.iter().enumerate() {
            if matches!(i, 8 | 12 | 16 | 20) {
                id.push('-');
            }
            id.push(char::from(*digit));
        }
        id
    }

    /// `n` random lowercase alphanumerics (Kubernetes' `generateName` suffix alphabet).
    pub fn suffix(&self, n: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut b = vec![0u8; n];
        self.fill(&mut b);
        b.iter()
            .map(|x| char::from(ALPHABET[usize::from(*x) % ALPHABET.len()]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same seed and name give the same stream; another name gives another stream.
    #[test]
    fn named_streams_are_stable_and_independent() {
        let a = Entropy::seeded(Seed(7), "apiserver/uid");
        let b = Entropy::seeded(Seed(7), "apiserver/uid");
        let c = Entropy::seeded(Seed(7), "edge-1/jitter");
        let (x, y, z) = (a.uuid_v4(), b.uuid_v4(), c.uuid_v4());
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_eq!(x.len(), 36);
        assert_eq!(&x[14..15], "4");
    }

    /// Goal: ids are RFC 4122 text of the stream's next 16 bytes, with the version and variant
    /// bits set, as `format!("{:02x}")` per byte wrote them before. Method: two streams with
    /// the same seed; one makes ids, the other draws the bytes, formatted the old way.
    #[test]
    fn ids_are_the_hyphenated_hex_of_the_next_sixteen_bytes() {
        let ids = Entropy::seeded(Seed(3), "ids");
        let bytes = Entropy::seeded(Seed(3), "ids");
        for _ in 0..100 {
            let mut b = [0u8; 16];
            bytes.fill(&mut b);
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let want = format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            );
            assert_eq!(ids.uuid_v4(), want);
        }
    }
}
