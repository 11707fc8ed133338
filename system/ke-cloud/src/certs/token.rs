//! KubeEdge join tokens (`pkg/security/token/token.go`): `<hex sha256(CA DER)>.<JWT>`.
//!
//! The JWT is HS256 with the CA private key's SEC1 DER bytes as the HMAC key and a single
//! claim, `exp` = issue time + 2 × the refresh interval, so a token stays valid for one refresh
//! period after the next one replaces it. The edge checks the hash prefix against the CA it
//! downloads (it cannot verify the JWT); the cloud checks the JWT's signature and expiry.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ke_core::Clock;
use ring::hmac;
use sha2::{Digest, Sha256};
use std::{fmt, time::Duration};

/// KubeEdge's default `tokenRefreshDuration` (12 h).
pub const TOKEN_REFRESH_DEFAULT: Duration = Duration::from_secs(12 * 3600);

/// The JWT header golang-jwt writes for HS256 (Go marshals map keys in sorted order).
const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Why a token was refused. None of these is retryable with the same token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not `<hash>.<header>.<payload>.<signature>`, or a part does not decode.
    #[error("malformed join token: {0}")]
    Malformed(&'static str),
    /// The JWT uses another algorithm than HS256 (`none` included).
    #[error("join token algorithm {0:?} is not HS256")]
    Algorithm(String),
    /// The signature does not match this CA's key: a token of another cluster, or tampered.
    #[error("join token signature is invalid")]
    BadSignature,
    /// The token has no `exp` claim.
    #[error("join token has no expiry")]
    NoExpiry,
    /// The token expired.
    #[error("join token expired at unix time {exp} (now {now})")]
    Expired {
        /// The `exp` claim.
        exp: i64,
        /// The clock's time when checked.
        now: i64,
    },
    /// The hash prefix is not the hash of this CA's certificate.
    #[error("join token was made for another CA (hash {found}, this CA is {expected})")]
    CaHashMismatch {
        /// Hash of this CA.
        expected: String,
        /// Hash in the token.
        found: String,
    },
}

/// A join token: the CA certificate hash and the JWT.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    ca_hash: String,
    jwt: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The JWT is a bearer credential: keep it out of logs.
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.ca_hash, self.jwt)
    }
}

/// Lowercase hex SHA-256 of a CA certificate's DER bytes (the token prefix).
pub fn ca_cert_hash(ca_der: &[u8]) -> String {
    hex::encode(Sha256::digest(ca_der))
}

impl JoinToken {
    /// A token for the CA with DER `ca_der` and HMAC key `key` (the CA key's SEC1 DER),
    /// expiring at now + 2 × `refresh`.
    pub fn create(ca_der: &[u8], key: &[u8], clock: &dyn Clock, refresh: Duration) -> Self {
        let ttl = i64::try_from(refresh.as_secs().saturating_mul(2)).unwrap_or(i64::MAX);
        let exp = clock.now_utc().unix_timestamp().saturating_add(ttl);
        Self {
            ca_hash: ca_cert_hash(ca_der),
            jwt: sign_jwt(&format!(r#"{{"exp":{exp}}}"#), key),
        }
    }

    /// Splits `<hash>.<jwt>`; checks only the shape.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        let token = token.trim();
        let (hash, jwt) = token
            .split_once('.')
            .ok_or(TokenError::Malformed("no '.' after the CA hash"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Malformed("CA hash is not 64 hex digits"));
        }
        if jwt.split('.').count() != 3 {
            return Err(TokenError::Malformed(
                "JWT is not three dot-separated parts",
            ));
        }
        Ok(Self {
            ca_hash: hash.to_ascii_lowercase(),
            jwt: jwt.to_owned(),
        })
    }

    /// The CA hash prefix (lowercase hex).
    pub fn ca_hash(&self) -> &str {
        &self.ca_hash
    }

    /// The JWT, what an edge sends as `Authorization: Bearer <jwt>`.
    pub fn jwt(&self) -> &str {
        &self.jwt
    }

    /// Full check: the hash prefix names the CA `ca_der`, and the JWT verifies.
    pub fn verify(&self, ca_der: &[u8], key: &[u8], clock: &dyn Clock) -> Result<(), TokenError> {
        let expected = ca_cert_hash(ca_der);
        if expected != self.ca_hash {
            return Err(TokenError::CaHashMismatch {
                expected,
                found: self.ca_hash.clone(),
            });
        }
        verify_jwt(&self.jwt, key, clock)
    }
}

fn sign_jwt(payload: &str, key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(JWT_HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Decodes one JWT segment (base64url; trailing `=` tolerated as golang-jwt does).
fn segment(s: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("JWT segment is not base64url"))
}

/// Checks an HS256 JWT (what `/edge.crt` receives as the bearer token): algorithm, signature
/// (constant time), then `exp` against `clock` (valid while now < exp, as golang-jwt).
pub fn verify_jwt(jwt: &str, key: &[u8], clock: &dyn Clock) -> Result<(), TokenError> {
    let mut parts = jwt.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "JWT is not three dot-separated parts",
        ));
    };
    let header: serde_json::Value = serde_json::from_slice(&segment(h)?)
        .map_err(|_| TokenError::Malformed("JWT header is not JSON"))?;
    match header.get("alg").and_then(serde_json::Value::as_str) {
        Some("HS256") => {}
        other => return Err(TokenError::Algorithm(other.unwrap_or("").to_owned())),
    }
    let signing_input = &jwt.trim()[..h.len() + 1 + p.len()];
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
        &segment(s)?,
    )
    .map_err(|_| TokenError::BadSignature)?;
    let claims: serde_json::Value = serde_json::from_slice(&segment(p)?)
        .map_err(|_| TokenError::Malformed("JWT claims are not JSON"))?;
    let exp = claims.get("exp").ok_or(TokenError::NoExpiry)?;
    // golang-jwt writes an integer; accept a float too (JSON numbers are untyped).
    #[allow(
        clippy::cast_possible_truncation,
        reason = "exp is seconds; fractions are dropped as golang-jwt does"
    )]
    let exp = exp
        .as_i64()
        .or_else(|| exp.as_f64().map(|f| f as i64))
        .ok_or(TokenError::Malformed("exp is not a number"))?;
    let now = clock.now_utc().unix_timestamp();
    if now >= exp {
        return Err(TokenError::Expired { exp, now });
    }
    Ok(())
}
