//! Object metadata rules: names, type meta, and what an update may not change.

use crate::{api::ApiError, registry::ResourceInfo};
use serde_json::{Value, json};

/// Whether `s` is a DNS-1123 subdomain (the rule for most object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `s` is a DNS-1123 label (namespace names).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

/// Checks `apiVersion`/`kind` of a request body against the resource and fills them in.
pub fn check_type_meta(info: &ResourceInfo, body: &mut Value) -> Result<(), ApiError> {
    let want_av = info.api_version();
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
        && av != want_av
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != info.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            info.kind
        )));
    }
    body["apiVersion"] = json!(want_av);
    body["kind"] = json!(info.kind);
    Ok(())
}

/// Checks and sets `metadata.namespace` against the request's namespace.
pub fn check_namespace(info: &ResourceInfo, ns: &str, body: &mut Value) -> Result<(), ApiError> {
    let meta = body["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("Object 'metadata' is missing or not an object"))?;
    if !info.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    match meta.get("namespace").and_then(Value::as_str) {
        Some(x) if !x.is_empty() && x != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta.insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

/// The metadata string at `key`, or "".
pub fn meta_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v["metadata"][key].as_str().unwrap_or_default()
}

/// True if `a` and `b` differ outside `metadata` and `status` (a change there bumps
/// `generation`). Compares in place: no copy of either object.
pub fn spec_differs(a: &Value, b: &Value) -> bool {
    let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else {
        return a != b;
    };
    let counted = |k: &String| k != "metadata" && k != "status";
    let len = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| counted(k)).count();
    len(x) != len(y)
        || x.iter()
            .filter(|(k, _)| counted(k))
            .any(|(k, v)| y.get(k) != Some(v))
}

/// Finalizers of an object.
pub fn finalizers(v: &Value) -> Vec<String> {
    v["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names follow DNS-1123: lower case, digits, dashes, dots between labels.
    #[test]
    fn dns_names() {
        for ok in ["a", "edge-1", "devices.kubeedge.io", "x1.y-2"] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
        assert!(!is_dns_label("a.b"));
    }

    /// Goal: `generation` counts changes outside metadata and status only. Method: pairs
    /// differing in metadata, status, a spec field, an added top-level field, key order.
    #[test]
    fn spec_differs_ignores_metadata_and_status() {
        use serde_json::json;
        let a = json!({"metadata": {"name": "p", "resourceVersion": "1"},
            "spec": {"x": 1}, "status": {"phase": "Pending"}});
        let meta = json!({"metadata": {"name": "p", "resourceVersion": "2", "labels": {"a": "b"}},
            "spec": {"x": 1}, "status": {"phase": "Running"}});
        assert!(!spec_differs(&a, &meta));
        let spec =
            json!({"metadata": {"name": "p"}, "spec": {"x": 2}, "status": {"phase": "Pending"}});
        assert!(spec_differs(&a, &spec));
        let more = json!({"metadata": {"name": "p"}, "spec": {"x": 1}, "data": {}});
        assert!(spec_differs(&a, &more) && spec_differs(&more, &a));
        let reordered = json!({"status": {}, "spec": {"x": 1}, "metadata": {}});
        assert!(!spec_differs(&a, &reordered));
        assert!(spec_differs(&a, &json!("not an object")));
    }
}
