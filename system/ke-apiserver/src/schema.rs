//! OpenAPI definitions of the built-in kinds. (Being written; the contract below is fixed.)

use serde_json::Value;
use std::collections::BTreeMap;

/// All OpenAPI v3 definitions of the built-in types, keyed by definition name
/// (`io.k8s.api.core.v1.Pod`), with references written as `#/components/schemas/<name>`.
pub fn builtin_definitions() -> &'static BTreeMap<String, Value> {
    static EMPTY: std::sync::OnceLock<BTreeMap<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(BTreeMap::new)
}
