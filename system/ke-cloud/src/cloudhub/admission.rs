//! Admission of an upgrade request: who the edge says it is (`node_id`, `project_id`,
//! `ConnectionUse` headers, matched case-insensitively as Go canonicalises them), who its
//! certificate says it is (CN `system:node:<name>`), and the refusal sent when they disagree.
//! Pure functions, no I/O.

use ke_proto::NodeId;
use tokio_tungstenite::tungstenite::http::{self, HeaderMap, StatusCode};

use super::metrics::Refusal;

/// The CN prefix of an edge node's client certificate.
pub(crate) const NODE_CN_PREFIX: &str = "system:node:";

/// An admitted edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) node: NodeId,
    pub(crate) project: String,
}

/// A refused upgrade: the HTTP status and a one-line reason for the body and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) reason: String,
    pub(crate) kind: Refusal,
}

impl Refused {
    fn bad_request(reason: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason,
            kind: Refusal::BadRequest,
        }
    }

    fn forbidden(reason: String) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason,
            kind: Refusal::Forbidden,
        }
    }

    /// The node limit is reached.
    pub(crate) fn node_limit(node: &NodeId, limit: usize) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: format!(
                "cloudhub node limit reached: {limit} nodes are connected (nodeLimit {limit}); \
                 node {node} refused"
            ),
            kind: Refusal::NodeLimit,
        }
    }

    /// The HTTP response sent instead of `101 Switching Protocols`.
    pub(crate) fn response(&self) -> http::Response<Option<String>> {
        let body = format!("{}\n", self.reason);
        http::Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::CONNECTION, "close")
            .body(Some(body))
            .unwrap_or_else(|_| http::Response::new(Some(String::from("refused\n"))))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Refused> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| Refused::bad_request(format!("header {name} is not visible ASCII"))),
    }
}

/// Reads the identity headers and, with `authorize`, checks `node_id` against the node name
/// of the client certificate (`cert_node`: the name, or why there is none).
pub(crate) fn identify(
    headers: &HeaderMap,
    cert_node: &Result<String, String>,
    authorize: bool,
) -> Result<Identity, Refused> {
    match header(headers, "connectionuse")? {
        Some(u) if u.eq_ignore_ascii_case("msg") => {}
        Some(u) => {
            return Err(Refused::bad_request(format!(
                "ConnectionUse {u:?} is not supported; this hub serves ConnectionUse: msg"
            )));
        }
        None => {
            return Err(Refused::bad_request(
                "missing header ConnectionUse: msg".into(),
            ));
        }
    }
    let raw = header(headers, "node_id")?
        .ok_or_else(|| Refused::bad_request("missing header node_id".into()))?;
    let node = NodeId::new(raw)
        .map_err(|e| Refused::bad_request(format!("header node_id is not a node name: {e}")))?;
    let project = header(headers, "project_id")?.unwrap_or("").to_owned();
    if authorize {
        match cert_node {
            Ok(name) if name == node.as_str() => {}
            Ok(name) => {
                return Err(Refused::forbidden(format!(
                    "node authorization: node_id {node:?} does not match the client \
                     certificate's node {name:?} (CN {NODE_CN_PREFIX}{name})"
                )));
            }
            Err(why) => {
                return Err(Refused::forbidden(format!(
                    "node authorization: node_id {node:?} refused: {why}"
                )));
            }
        }
    }
    Ok(Identity { node, project })
}

/// The node name in a client certificate (DER): its CN without `system:node:`.
pub(crate) fn cert_node_name(der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("client certificate does not parse: {e}"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .ok_or("client certificate has no CN")?
        .as_str()
        .map_err(|_| "client certificate CN is not a string".to_owned())?;
    cn.strip_prefix(NODE_CN_PREFIX)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("client certificate CN {cn:?} is not {NODE_CN_PREFIX}<node>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// Goal: headers are read case-insensitively and each refusal carries its reason.
    /// Method: Go-canonicalised headers admitted; mismatch, missing cert CN, missing
    /// ConnectionUse and a bad node name refused with the right status.
    #[test]
    fn identify_cases() {
        let ok = headers(&[
            ("Node_id", "e1"),
            ("Project_id", "p"),
            ("Connectionuse", "msg"),
        ]);
        let id = identify(&ok, &Ok("e1".into()), true).unwrap();
        assert_eq!((id.node.as_str(), id.project.as_str()), ("e1", "p"));
        let r = identify(&ok, &Ok("e2".into()), true).unwrap_err();
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(
            r.reason.contains("\"e1\"") && r.reason.contains("\"e2\""),
            "{}",
            r.reason
        );
        assert!(identify(&ok, &Ok("e2".into()), false).is_ok());
        let r = identify(&ok, &Err("no CN".into()), true).unwrap_err();
        assert!(r.reason.contains("no CN"));
        let no_use = headers(&[("node_id", "e1")]);
        let r = identify(&no_use, &Ok("e1".into()), true).unwrap_err();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.reason.contains("ConnectionUse"));
        let bad = headers(&[("node_id", "a/b"), ("connectionuse", "msg")]);
        assert_eq!(
            identify(&bad, &Ok("a/b".into()), true).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    /// Goal: the node name comes from the CN prefix only. Method: rcgen certificates with a
    /// node CN and with a non-node CN.
    #[test]
    fn cert_cn() {
        let make = |cn: &str| {
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            let key = rcgen::KeyPair::generate().unwrap();
            p.self_signed(&key).unwrap().der().to_vec()
        };
        assert_eq!(
            cert_node_name(&make("system:node:edge-1")),
            Ok("edge-1".into())
        );
        assert!(
            cert_node_name(&make("KubeEdge"))
                .unwrap_err()
                .contains("KubeEdge")
        );
    }
}
