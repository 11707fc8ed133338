//! Authentication: bearer tokens. Tokens are kept as SHA-256 digests, so a lookup compares
//! digests rather than secrets and the secrets are not held in memory longer than needed.

use crate::api::ApiError;
use http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use std::{collections::BTreeMap, sync::RwLock};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name (`admin`, `system:node:edge-1`).
    pub name: String,
    /// Groups (`system:masters`, `system:nodes`).
    pub groups: Vec<String>,
}

/// The token authenticator.
#[derive(Debug, Default)]
pub struct Auth {
    tokens: RwLock<BTreeMap<[u8; 32], User>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// Accepts `token` as `user` from now on.
    pub fn add_token(&self, token: &str, user: User) {
        let mut t = self
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.insert(digest(token), user);
    }

    /// Who sent this request; 401 if nobody we know.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<User, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = value
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let t = self
            .tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.get(&digest(token))
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a known token authenticates; a missing, empty or wrong one is 401.
    #[test]
    fn bearer_tokens() {
        let a = Auth::default();
        a.add_token(
            "s3cret",
            User {
                name: "admin".into(),
                groups: vec!["system:masters".into()],
            },
        );
        let mut h = HeaderMap::new();
        assert_eq!(a.authenticate(&h).unwrap_err().code, 401);
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(a.authenticate(&h).unwrap_err().code, 401);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(a.authenticate(&h).unwrap_err().code, 401);
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(a.authenticate(&h).unwrap().name, "admin");
    }
}
