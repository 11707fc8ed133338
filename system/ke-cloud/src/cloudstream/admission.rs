//! Admission of a tunnel upgrade. Pure, no I/O.

use ke_proto::stream::{HEADER_NODE, TUNNEL_PATH};
use tokio_tungstenite::tungstenite::http::{HeaderMap, StatusCode};

/// Admits an upgrade: the path is the tunnel's, and the node named by
/// `SessionHostNameOverride` is the node of the verified client certificate (`cert_node`:
/// its name, or why there is none). Returns the node, or the refusal's status and reason.
pub(crate) fn admit(
    path: &str,
    headers: &HeaderMap,
    cert_node: &Result<String, String>,
) -> Result<String, (StatusCode, String)> {
    if path != TUNNEL_PATH {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no tunnel at {path}; use {TUNNEL_PATH}"),
        ));
    }
    let named = headers
        .get(HEADER_NODE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("missing header {HEADER_NODE}"),
            )
        })?;
    match cert_node {
        Ok(cert) if cert == named => Ok(cert.clone()),
        Ok(cert) => Err((
            StatusCode::FORBIDDEN,
            format!(
                "{HEADER_NODE} {named:?} does not match the client certificate's node {cert:?}"
            ),
        )),
        Err(why) => Err((
            StatusCode::FORBIDDEN,
            format!("tunnel for {named:?} refused: {why}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(node: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(HEADER_NODE, node.parse().unwrap());
        m
    }

    /// Goal: a tunnel is admitted only for its certificate's node: a header naming another
    /// node, no certificate node, a missing header or a wrong path are refused.
    #[test]
    fn the_node_header_must_match_the_certificate() {
        let cert = Ok("edge-1".to_owned());
        assert_eq!(admit(TUNNEL_PATH, &h("edge-1"), &cert), Ok("edge-1".into()));
        let (code, why) = admit(TUNNEL_PATH, &h("edge-2"), &cert).unwrap_err();
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert!(why.contains("edge-2") && why.contains("edge-1"), "{why}");
        let none = Err("no client certificate".to_owned());
        assert_eq!(
            admit(TUNNEL_PATH, &h("edge-1"), &none).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            admit(TUNNEL_PATH, &HeaderMap::new(), &cert).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            admit("/other", &h("edge-1"), &cert).unwrap_err().0,
            StatusCode::NOT_FOUND
        );
    }
}
