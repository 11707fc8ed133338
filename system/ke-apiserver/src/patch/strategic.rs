//! Strategic merge patch of objects (maps), following kube-apiserver's
//! `k8s.io/apimachinery/pkg/util/strategicpatch` `mergeMap` with the server-side options
//! (`MergeParallelList` and `IgnoreUnmatchedNulls` both set).
//!
//! Per map: a `$patch: replace|delete` directive wins outright; then `$retainKeys` clears the
//! fields it does not list; then each `$setElementOrder/<list>` merges and orders its list
//! ([`super::list`]); then every remaining field merges: `null` deletes, maps recurse (unless
//! the field's strategy is `replace`), lists merge by their strategy, anything else replaces.
//! `$deleteFromPrimitiveList/<list>` removes values from a list of scalars. Patch values that
//! land where the object had nothing are taken with their directives resolved, so the result
//! never carries a directive.

use super::{PatchError, list, meta::Schema};
use serde_json::{Map, Value};

/// The per-map or per-element directive key: `$patch: replace|delete|merge`.
pub(super) const DIRECTIVE: &str = "$patch";
/// The directive that lists the fields a map keeps.
const RETAIN_KEYS: &str = "$retainKeys";
/// Prefix of `$setElementOrder/<list>`.
pub(super) const SET_ORDER: &str = "$setElementOrder";
/// Prefix of `$deleteFromPrimitiveList/<list>`.
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList";

/// Applies the strategic merge patch `patch` (JSON bytes) to `original`, an object of the
/// OpenAPI definition `def`.
pub(super) fn apply(original: &Value, patch: &[u8], def: &str) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(patch).map_err(PatchError::MalformedBody)?;
    let Value::Object(patch) = patch else {
        return Err(PatchError::invalid(
            "a strategic merge patch must be a JSON object",
        ));
    };
    let Value::Object(original) = original.clone() else {
        return Err(PatchError::unprocessable(
            "the object to patch is not a JSON object",
        ));
    };
    merge_map(original, patch, Schema::Struct(def)).map(Value::Object)
}

/// Merges the patch map `patch` into `original`, an object of type `schema`.
pub(super) fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema<'_>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            // The patch replaces the map; its own directives still apply (to nothing).
            Some("replace") => merge_map(Map::new(), patch, schema),
            // kube-apiserver leaves an empty map, not a missing field.
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::invalid(format!(
                "unknown $patch directive {directive}"
            ))),
        };
    }
    retain_keys(&mut original, &mut patch)?;
    list::apply_element_orders(&mut original, &mut patch, schema)?;
    for (key, value) in patch {
        merge_field(&mut original, key, value, schema)?;
    }
    Ok(original)
}

/// Merges one patch field into `original`.
fn merge_field(
    original: &mut Map<String, Value>,
    key: String,
    patch: Value,
    schema: Schema<'_>,
) -> Result<(), PatchError> {
    let (key, delete_list) = match key.strip_prefix(DELETE_PRIMITIVE) {
        Some(rest) => (directive_field(rest, DELETE_PRIMITIVE)?, true),
        None => (key, false),
    };
    if patch.is_null() {
        original.remove(&key);
        return Ok(());
    }
    let (child, meta) = schema.field(&key);
    let merged = match (original.remove(&key), patch) {
        (None, _) if delete_list => None,
        (None, patch) => fresh(patch, child)?,
        (Some(Value::Object(current)), Value::Object(patch)) => {
            if meta.is_some_and(|m| m.base_strategy() == "replace") {
                fresh(Value::Object(patch), child)?
            } else {
                Some(Value::Object(merge_map(current, patch, child)?))
            }
        }
        (Some(Value::Array(current)), Value::Array(patch)) => Some(Value::Array(
            list::merge_field(current, patch, child, meta, delete_list)?,
        )),
        (Some(current), _) if delete_list => Some(current),
        (Some(_), patch) => fresh(patch, child)?,
    };
    if let Some(value) = merged {
        original.insert(key, value);
    }
    Ok(())
}

/// The list field named by a `$setElementOrder/<field>` or `$deleteFromPrimitiveList/<field>`
/// key, given the part after the prefix.
pub(super) fn directive_field(rest: &str, prefix: &str) -> Result<String, PatchError> {
    rest.strip_prefix('/')
        .map(str::to_owned)
        .ok_or_else(|| PatchError::invalid(format!("{prefix} must be followed by /<field>")))
}

/// Applies `$retainKeys`: every field of `original` it does not list is cleared, and every
/// field the patch sets must be listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(keys) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(keys) = keys else {
        return Err(PatchError::invalid(
            "$retainKeys must be a list of field names",
        ));
    };
    let retained = |field: &str| keys.iter().any(|k| k.as_str() == Some(field));
    let unlisted = patch.iter().find(|(field, value)| {
        !value.is_null()
            && !field.starts_with(DELETE_PRIMITIVE)
            && !field.starts_with(SET_ORDER)
            && !retained(field)
    });
    if let Some((field, _)) = unlisted {
        return Err(PatchError::invalid(format!(
            "field {field} is set but not in $retainKeys"
        )));
    }
    original.retain(|field, _| retained(field));
    Ok(())
}

/// A patch value for a place where the object has nothing (or a value of another shape):
/// the value with its directives resolved against nothing, or `None` for `$patch: delete`.
pub(super) fn fresh(patch: Value, schema: Schema<'_>) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Object(map) if is_delete(&map) => Ok(None),
        Value::Object(map) => Ok(Some(Value::Object(merge_map(Map::new(), map, schema)?))),
        Value::Array(items) => Ok(Some(Value::Array(fresh_list(items, schema)?))),
        other => Ok(Some(other)),
    }
}

/// A patch list for a place where the object has nothing: elements that are only directives
/// (`{"$patch": ...}` markers and deletions) are dropped, the rest resolved.
pub(super) fn fresh_list(items: Vec<Value>, schema: Schema<'_>) -> Result<Vec<Value>, PatchError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if has_directive(&item) {
            continue;
        }
        out.extend(fresh(item, schema)?);
    }
    Ok(out)
}

/// Whether `map` is `{"$patch": "delete", ...}`.
fn is_delete(map: &Map<String, Value>) -> bool {
    map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

/// Whether `value` is an object carrying a `$patch` directive.
pub(super) fn has_directive(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.contains_key(DIRECTIVE))
}
