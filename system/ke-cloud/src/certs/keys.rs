//! ECDSA P-256 private keys in the two encodings that meet here: PKCS#8 (what ring and rcgen
//! read and write) and SEC1 `ECPrivateKey` (what KubeEdge stores: `x509.MarshalECPrivateKey`,
//! PEM label `EC PRIVATE KEY`). The SEC1 DER bytes matter beyond storage: KubeEdge signs join
//! tokens with them as the HMAC key, so they are rebuilt in Go's canonical layout.
//!
//! Only the small DER subset these two structures need is parsed; anything else is refused.

use rcgen::KeyPair;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// `id-ecPublicKey` (1.2.840.10045.2.1), full TLV.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1` (1.2.840.10045.3.1.7), full TLV.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// P-256 private scalar length.
const SCALAR_LEN: usize = 32;
/// Uncompressed P-256 point length (`0x04 || x || y`).
const POINT_LEN: usize = 65;

/// Why a private key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No private key was found in the PEM text.
    #[error("no private key in the PEM data")]
    Missing,
    /// The PEM text could not be read.
    #[error("private key PEM does not parse")]
    Pem(#[source] std::io::Error),
    /// The key is not an ECDSA P-256 key in PKCS#8 or SEC1 form.
    #[error("private key is not an ECDSA P-256 key ({0})")]
    Unsupported(&'static str),
    /// ring refused the key material.
    #[error("private key is inconsistent")]
    Rejected(#[source] rcgen::Error),
}

/// A P-256 key with both encodings at hand.
#[derive(Debug)]
pub(crate) struct P256Key {
    /// The key for rcgen (signing certificates).
    pub(crate) pair: KeyPair,
    /// Canonical SEC1 DER (Go's `MarshalECPrivateKey` layout).
    pub(crate) sec1: Vec<u8>,
}

impl P256Key {
    /// A fresh key (ring's system randomness: key material never comes from a seeded stream).
    pub(crate) fn generate() -> Result<Self, KeyError> {
        let pair =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(KeyError::Rejected)?;
        let pkcs8 = pair.serialize_der();
        Self::from_pkcs8(&pkcs8)
    }

    /// Reads a PEM key: `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1).
    pub(crate) fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = rustls_pemfile::private_key(&mut pem.as_bytes())
            .map_err(KeyError::Pem)?
            .ok_or(KeyError::Missing)?;
        match der {
            PrivateKeyDer::Pkcs8(k) => Self::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Sec1(k) => Self::from_sec1(k.secret_sec1_der()),
            _ => Err(KeyError::Unsupported("RSA or unknown key type")),
        }
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let mut outer = Reader::new(pkcs8).sequence()?;
        if outer.expect(0x02)? != [0] {
            return Err(KeyError::Unsupported("PKCS#8 version"));
        }
        let alg = outer.expect(0x30)?;
        if !contains(alg, EC_PUBLIC_KEY_OID) || !contains(alg, P256_OID) {
            return Err(KeyError::Unsupported("PKCS#8 algorithm"));
        }
        Self::from_sec1(outer.expect(0x04)?)
    }

    fn from_sec1(sec1: &[u8]) -> Result<Self, KeyError> {
        let (scalar, point) = parse_sec1(sec1)?;
        let sec1 = canonical_sec1(&scalar, point);
        let alg = tlv(0x30, &[EC_PUBLIC_KEY_OID, P256_OID].concat());
        let pkcs8 = tlv(
            0x30,
            &[&tlv(0x02, &[0])[..], &alg, &tlv(0x04, &sec1)].concat(),
        );
        let pair = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .map_err(KeyError::Rejected)?;
        Ok(Self { pair, sec1 })
    }

    /// The key as PEM `EC PRIVATE KEY`, as KubeEdge writes `rootCA.key` and `server.key`.
    pub(crate) fn sec1_pem(&self) -> String {
        pem_encode("EC PRIVATE KEY", &self.sec1)
    }

    /// The key for rustls (PKCS#8).
    pub(crate) fn rustls_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pair.serialize_der()))
    }
}

/// `(scalar padded to 32 bytes, uncompressed public point)` from SEC1 DER.
fn parse_sec1(sec1: &[u8]) -> Result<([u8; SCALAR_LEN], &[u8]), KeyError> {
    let mut seq = Reader::new(sec1).sequence()?;
    if seq.expect(0x02)? != [1] {
        return Err(KeyError::Unsupported("SEC1 version"));
    }
    let raw = seq.expect(0x04)?;
    if raw.len() > SCALAR_LEN {
        return Err(KeyError::Unsupported("scalar length"));
    }
    let mut scalar = [0u8; SCALAR_LEN];
    scalar[SCALAR_LEN - raw.len()..].copy_from_slice(raw);
    let mut point = None;
    while let Some((tag, body)) = seq.next()? {
        match tag {
            0xa0 if body != P256_OID => return Err(KeyError::Unsupported("curve")),
            0xa1 => {
                let bits = Reader::new(body).expect(0x03)?;
                point = bits.strip_prefix(&[0]);
            }
            _ => {}
        }
    }
    match point {
        Some(p) if p.len() == POINT_LEN && p[0] == 0x04 => Ok((scalar, p)),
        _ => Err(KeyError::Unsupported("public key missing from SEC1 key")),
    }
}

/// Go's `MarshalECPrivateKey` layout: version 1, scalar, `[0]` curve OID, `[1]` public point.
fn canonical_sec1(scalar: &[u8], point: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    tlv(
        0x30,
        &[
            &tlv(0x02, &[1])[..],
            &tlv(0x04, scalar),
            &tlv(0xa0, P256_OID),
            &tlv(0xa1, &tlv(0x03, &bits)),
        ]
        .concat(),
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One DER TLV (definite length; the structures here are far below 64 KiB).
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(u8::try_from(n).unwrap_or(0));
    } else if n <= 0xff {
        out.extend_from_slice(&[0x81, u8::try_from(n).unwrap_or(0)]);
    } else {
        let [hi, lo] = u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes();
        out.extend_from_slice(&[0x82, hi, lo]);
    }
    out.extend_from_slice(body);
    out
}

/// A cursor over DER TLVs.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    /// The next TLV, or `None` at the end.
    fn next(&mut self) -> Result<Option<(u8, &'a [u8])>, KeyError> {
        let bad = KeyError::Unsupported("DER encoding");
        let Some((&tag, rest)) = self.rest.split_first() else {
            return Ok(None);
        };
        let (&first, rest) = rest.split_first().ok_or(bad)?;
        let (len, rest) = match first {
            n if n < 0x80 => (usize::from(n), rest),
            0x81 => match rest.split_first() {
                Some((&n, r)) => (usize::from(n), r),
                None => return Err(KeyError::Unsupported("DER encoding")),
            },
            0x82 if rest.len() >= 2 => (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            ),
            _ => return Err(KeyError::Unsupported("DER encoding")),
        };
        if rest.len() < len {
            return Err(KeyError::Unsupported("DER encoding"));
        }
        let (body, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(Some((tag, body)))
    }

    /// The next TLV, which must carry `tag`.
    fn expect(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        match self.next()? {
            Some((t, body)) if t == tag => Ok(body),
            _ => Err(KeyError::Unsupported("unexpected DER structure")),
        }
    }

    /// The body of the SEQUENCE at the cursor, as a reader.
    fn sequence(&mut self) -> Result<Reader<'a>, KeyError> {
        self.expect(0x30).map(Reader::new)
    }
}

/// PEM text for `der` under `label` (64-column base64 lines).
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: PKCS#8 and SEC1 forms of one key give the same canonical SEC1 bytes, laid out as
    /// Go's `MarshalECPrivateKey` (121 bytes for P-256). Method: generate, convert to SEC1
    /// PEM, read it back, compare public keys and SEC1 bytes.
    #[test]
    fn pkcs8_and_sec1_round_trip() {
        let k = P256Key::generate().unwrap();
        assert_eq!(k.sec1.len(), 121);
        assert_eq!(&k.sec1[..7], &[0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20]);
        let back = P256Key::from_pem(&k.sec1_pem()).unwrap();
        assert_eq!(back.sec1, k.sec1);
        assert_eq!(back.pair.public_key_raw(), k.pair.public_key_raw());
        let again = P256Key::from_pem(&k.pair.serialize_pem()).unwrap();
        assert_eq!(again.sec1, k.sec1);
    }

    /// Goal: garbage and non-P-256 keys are refused, not panicked on. Method: truncated DER
    /// and an Ed25519 PKCS#8 key.
    #[test]
    fn refuses_garbage() {
        let k = P256Key::generate().unwrap();
        assert!(parse_sec1(&k.sec1[..40]).is_err());
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(P256Key::from_pem(&ed.serialize_pem()).is_err());
        assert!(P256Key::from_pem("nothing here").is_err());
    }
}
