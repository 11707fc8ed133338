//! Lists in a strategic merge patch, following kube-apiserver's `mergeSlice`,
//! `mergePatchIntoOriginal` and `normalizeElementOrder`.
//!
//! A list whose field has strategy `merge` merges: lists of objects by their merge key (a patch
//! element with `$patch: delete` removes the matching elements, an element `{"$patch":
//! "replace"}` makes the other patch elements the whole list), lists of scalars by union.
//! Any other list is replaced. The merged list is ordered like the server does: patch
//! elements in patch order, the object's other elements in their old order, interleaved by
//! their old positions; `$setElementOrder/<list>` then imposes its own order the same way.
//!
//! Equality of scalars and merge-key values goes through [`identity`], a canonical string,
//! so that lookups are hashed rather than quadratic.

use super::{
    PatchError,
    meta::{PatchMeta, Schema},
    strategic::{DIRECTIVE, SET_ORDER, directive_field, fresh_list, has_directive, merge_map},
};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Merges the patch list `patch` into the object's list `current` according to the field's
/// metadata; `delete_list` marks a `$deleteFromPrimitiveList` list.
pub(super) fn merge_field(
    current: Vec<Value>,
    patch: Vec<Value>,
    element: Schema<'_>,
    meta: Option<PatchMeta>,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    let strategy = meta.map_or("", |m| m.base_strategy());
    if strategy == "merge" || delete_list {
        merge_slice(
            current,
            patch,
            meta.and_then(|m| m.merge_key),
            element,
            delete_list,
        )
    } else {
        fresh_list(patch, element)
    }
}

/// Merges two lists with strategy `merge`.
fn merge_slice(
    current: Vec<Value>,
    patch: Vec<Value>,
    key: Option<&str>,
    element: Schema<'_>,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if !elements_are_objects(&current, &patch)? {
        if delete_list {
            let doomed: HashSet<String> = patch.iter().map(identity).collect();
            return Ok(current
                .into_iter()
                .filter(|v| !doomed.contains(&identity(v)))
                .collect());
        }
        let mut seen = HashSet::new();
        let merged: Vec<Value> = current
            .iter()
            .chain(&patch)
            .filter(|v| seen.insert(identity(v)))
            .cloned()
            .collect();
        return order(merged, &patch, &current, None);
    }
    let key =
        key.ok_or_else(|| PatchError::unprocessable("cannot merge a list without a merge key"))?;
    let (server, patch) = split_special(current, patch, key, element)?;
    let merged = merge_by_key(server.clone(), &patch, key, element)?;
    order(merged, &patch, &server, Some(key))
}

/// Whether the elements of both lists are objects (`false` for scalars or empty lists); lists
/// of lists and lists of mixed types are refused, as the server does.
fn elements_are_objects(current: &[Value], patch: &[Value]) -> Result<bool, PatchError> {
    let mut kind = None;
    for value in current.iter().chain(patch) {
        let this = match value {
            Value::Array(_) => {
                return Err(PatchError::unprocessable("lists of lists cannot merge"));
            }
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Object(_) => 4,
        };
        if *kind.get_or_insert(this) != this {
            return Err(PatchError::unprocessable(
                "list elements are not all of one type",
            ));
        }
    }
    Ok(kind == Some(4))
}

/// Handles the patch elements that carry `$patch`: deletions are applied to `current`, and a
/// `replace` marker makes the remaining patch elements the whole list. Returns the list to
/// merge into and the plain patch elements.
fn split_special(
    mut current: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    element: Schema<'_>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let doomed = key_id(&item, key)?;
                current.retain(|v| element_id(v, Some(key)).as_ref() != Some(&doomed));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::invalid(
                    "$patch: merge is not supported in a list",
                ));
            }
            _ => {
                return Err(PatchError::invalid(format!(
                    "unknown $patch directive {directive}"
                )));
            }
        }
    }
    if replace {
        return Ok((fresh_list(plain, element)?, Vec::new()));
    }
    Ok((current, plain))
}

/// Merges each patch element into the element of `server` with the same merge-key value, or
/// appends it.
fn merge_by_key(
    mut server: Vec<Value>,
    patch: &[Value],
    key: &str,
    element: Schema<'_>,
) -> Result<Vec<Value>, PatchError> {
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, v) in server.iter().enumerate() {
        if let Some(id) = element_id(v, Some(key)) {
            index.entry(id).or_insert(i);
        }
    }
    for item in patch {
        let id = key_id(item, key)?;
        let item = item.as_object().cloned().unwrap_or_default();
        match index.get(&id) {
            Some(&i) => {
                let current = match server[i].take() {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                server[i] = Value::Object(merge_map(current, item, element)?);
            }
            None => {
                index.insert(id, server.len());
                server.push(Value::Object(merge_map(Map::new(), item, element)?));
            }
        }
    }
    Ok(server)
}

/// Orders a merged list: elements present in `patch_order` in that order, the others in
/// `server_order`, interleaved by their positions in `server_order`.
fn order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let (in_patch, server_only) = partition(merged, patch_order, key)?;
    let in_patch = sort_by(in_patch, patch_order, key)?;
    let server_only = sort_by(server_only, server_order, key)?;
    Ok(interleave(
        server_only,
        in_patch,
        &Positions::new(server_order, key),
    ))
}

/// Splits `merged` into the elements present in `by` and the others.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    if let Some(key) = key {
        require_key(&merged, key)?;
        if by.iter().any(|v| !v.is_object()) {
            return Err(PatchError::unprocessable("list elements must be objects"));
        }
    }
    let present = Positions::new(by, key);
    Ok(merged.into_iter().partition(|v| present.of(v).is_some()))
}

/// Sorts `items` (stably) by their positions in `order`; `$patch: delete` elements go last.
fn sort_by(
    items: Vec<Value>,
    order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    if let Some(key) = key {
        require_key(&items, key)?;
        require_key(order, key)?;
    }
    let (mut keep, deleted): (Vec<Value>, Vec<Value>) = items
        .into_iter()
        .partition(|v| key.is_none() || v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"));
    let positions = Positions::new(order, key);
    keep.sort_by_cached_key(|v| positions.of(v).unwrap_or(usize::MAX));
    keep.extend(deleted);
    Ok(keep)
}

/// Inserts the server-only elements (`left`) among the patch elements (`right`): a left
/// element goes first only while both are known to the server and it came first there.
fn interleave(left: Vec<Value>, right: Vec<Value>, server: &Positions) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (server.of(l), server.of(r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

/// First position of each element (by merge-key value, or by value for scalars) in a list.
struct Positions<'k> {
    /// Identity → first index.
    first: HashMap<String, usize>,
    /// The merge key, or `None` for scalars.
    key: Option<&'k str>,
}

impl<'k> Positions<'k> {
    /// Indexes `list`.
    fn new(list: &[Value], key: Option<&'k str>) -> Self {
        let mut first = HashMap::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            if let Some(id) = element_id(v, key) {
                first.entry(id).or_insert(i);
            }
        }
        Positions { first, key }
    }

    /// The position of `value`'s match, if any.
    fn of(&self, value: &Value) -> Option<usize> {
        element_id(value, self.key).and_then(|id| self.first.get(&id).copied())
    }
}

/// Applies every `$setElementOrder/<list>` directive of `patch` to `original`, merging the
/// named list (and removing it from `patch`) on the way.
pub(super) fn apply_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Schema<'_>,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = patch.remove(&directive) else {
            continue;
        };
        let field = directive_field(&directive[SET_ORDER.len()..], SET_ORDER)?;
        let Value::Array(order) = order else {
            return Err(PatchError::invalid(format!("{directive} must be a list")));
        };
        apply_element_order(original, patch, field, &order, schema)?;
    }
    Ok(())
}

/// Merges list `field` and orders it by `order`: listed elements in that order, the
/// object's other elements kept near their old neighbours.
fn apply_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    field: String,
    order: &[Value],
    schema: Schema<'_>,
) -> Result<(), PatchError> {
    let (element, meta) = schema.field(&field);
    let current = take_list(original, &field, true)?;
    let patch_list = take_list(patch, &field, false)?;
    let objects = elements_are_objects(
        current.as_deref().unwrap_or_default(),
        patch_list.as_deref().unwrap_or_default(),
    )?;
    let key = meta.and_then(|m| m.merge_key).filter(|_| objects);
    if let Some(patch_list) = &patch_list {
        validate_order(patch_list, order, key)?;
    }
    let (merged, server) = match (current, patch_list) {
        (None, None) => return Ok(()),
        (Some(current), None) => (current.clone(), current),
        (None, Some(patch_list)) => (fresh_list(patch_list, element)?, Vec::new()),
        (Some(current), Some(patch_list)) => (
            merge_field(current.clone(), patch_list, element, meta, false)?,
            current,
        ),
    };
    let (listed, server_only) = partition(merged, order, key)?;
    let listed = sort_by(listed, order, key)?;
    let server_only = sort_by(server_only, &server, key)?;
    let ordered = interleave(server_only, listed, &Positions::new(&server, key));
    original.insert(field, Value::Array(ordered));
    Ok(())
}

/// Removes list `field` from `map`. A non-list value is an error, except a `null` in the
/// object (`null_is_absent`), which counts as no list.
fn take_list(
    map: &mut Map<String, Value>,
    field: &str,
    null_is_absent: bool,
) -> Result<Option<Vec<Value>>, PatchError> {
    match map.remove(field) {
        None => Ok(None),
        Some(Value::Null) if null_is_absent => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => {
            map.insert(field.to_owned(), other);
            Err(PatchError::unprocessable(format!("{field} is not a list")))
        }
    }
}

/// Checks that the patch list's elements appear in `$setElementOrder` in the same relative
/// order (deletions and directive elements aside).
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    let items: Vec<&Value> = patch.iter().filter(|v| !has_directive(v)).collect();
    let (mut p, mut s) = (0, 0);
    while p < items.len() && s < order.len() {
        if element_id(items[p], key).is_none() || element_id(&order[s], key).is_none() {
            return Err(PatchError::unprocessable(
                "list element lacks its merge key",
            ));
        }
        if element_id(items[p], key) == element_id(&order[s], key) {
            p += 1;
        }
        s += 1;
    }
    if p < items.len() && !order.is_empty() {
        return Err(PatchError::invalid(format!(
            "the order of the patch list does not match {SET_ORDER}"
        )));
    }
    Ok(())
}

/// Fails unless every element of `list` is an object with merge key `key`.
fn require_key(list: &[Value], key: &str) -> Result<(), PatchError> {
    match list.iter().find(|v| element_id(v, Some(key)).is_none()) {
        Some(v) => Err(PatchError::unprocessable(format!(
            "{v} lacks merge key {key}"
        ))),
        None => Ok(()),
    }
}

/// The identity of the merge-key value of patch element `item`.
fn key_id(item: &Value, key: &str) -> Result<String, PatchError> {
    element_id(item, Some(key))
        .ok_or_else(|| PatchError::unprocessable(format!("{item} lacks merge key {key}")))
}

/// The identity an element is matched by: its merge-key value, or itself for scalars.
fn element_id(value: &Value, key: Option<&str>) -> Option<String> {
    match key {
        Some(key) => value.as_object()?.get(key).map(identity),
        None => Some(identity(value)),
    }
}

/// A canonical string for a JSON value, equal exactly when the server's Go values compare
/// equal (numbers as floats, so `1` matches `1.0`); the first character tells types apart.
fn identity(value: &Value) -> String {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) => format!("#{f}"),
            None => format!("#{n}"),
        },
        Value::String(s) => format!("\"{s}"),
        other => other.to_string(),
    }
}
