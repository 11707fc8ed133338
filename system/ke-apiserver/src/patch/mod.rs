//! Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic merge
//! patch, applied to an object as kube-apiserver applies a `PATCH` request body.
//!
//! - [`meta`](self::patch_meta): patch strategies and merge keys of the built-in types, and
//!   the field types the strategic merge walks by.
//! - `strategic`: strategic merge of maps and the `$patch`/`$retainKeys` directives.
//! - `list`: strategic merge of lists, `$deleteFromPrimitiveList` and `$setElementOrder`.
//!
//! [`apply`] picks the algorithm from the [`PatchType`]; errors say which HTTP status the
//! server answers ([`PatchError::status_code`]).

mod list;
mod meta;
mod strategic;

pub use meta::{PatchMeta, patch_meta};
use serde_json::Value;

/// Most operations one JSON patch may carry (kube-apiserver's `maxJSONPatchOperations`).
pub const JSON_PATCH_OPERATIONS_MAX: usize = 10_000;

/// The kind of a `PATCH` request, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`: RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386 merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes strategic merge patch.
    Strategic,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header value (parameters such as `charset` are
    /// ignored), or `None` if it is not a patch type.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied. None is retryable: the same patch fails the same way
/// against the same object.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not JSON of the expected shape (400 Bad Request).
    #[error("malformed patch body")]
    MalformedBody(#[source] serde_json::Error),
    /// The body is JSON but not a valid patch: not an object, or a malformed directive
    /// (`$patch`, `$retainKeys`, `$setElementOrder`, `$deleteFromPrimitiveList`) (400).
    #[error("invalid patch: {reason}")]
    InvalidPatch {
        /// What is wrong with the patch.
        reason: String,
    },
    /// A JSON patch operation failed: a `test` did not match, or a path does not exist
    /// (422 Unprocessable Entity).
    #[error("the JSON patch could not be applied")]
    JsonPatchFailed(#[source] json_patch::PatchError),
    /// The patch does not fit the object: a list element lacks its merge key, list elements
    /// differ in type, or the result is not an object (422).
    #[error("the patch could not be applied: {reason}")]
    Unprocessable {
        /// What does not fit.
        reason: String,
    },
    /// A JSON patch has more than [`JSON_PATCH_OPERATIONS_MAX`] operations (413).
    #[error("the JSON patch has {count} operations, more than the {max} allowed")]
    TooManyOperations {
        /// Operations in the patch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A strategic merge patch was sent for a type without patch metadata, i.e. a custom
    /// resource (415 Unsupported Media Type).
    #[error("strategic merge patch is not supported for custom resources")]
    StrategicUnsupported,
    /// The patch type is not implemented (server-side apply) (415).
    #[error("patch type {} is not supported", .0.content_type())]
    Unsupported(PatchType),
}

impl PatchError {
    /// The HTTP status kube-apiserver answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::MalformedBody(_) | PatchError::InvalidPatch { .. } => 400,
            PatchError::JsonPatchFailed(_) | PatchError::Unprocessable { .. } => 422,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::StrategicUnsupported | PatchError::Unsupported(_) => 415,
        }
    }

    /// The API error kube-apiserver answers with: the [`status_code`](Self::status_code), its
    /// `StatusReason`, and this error's message followed by its causes.
    pub fn into_api_error(self) -> crate::api::ApiError {
        let code = self.status_code();
        let reason = match code {
            400 => "BadRequest",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            _ => "Invalid",
        };
        let mut message = self.to_string();
        let mut source = std::error::Error::source(&self);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        crate::api::ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    /// An [`PatchError::InvalidPatch`].
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        PatchError::InvalidPatch {
            reason: reason.into(),
        }
    }

    /// An [`PatchError::Unprocessable`].
    pub(crate) fn unprocessable(reason: impl Into<String>) -> Self {
        PatchError::Unprocessable {
            reason: reason.into(),
        }
    }
}

/// Applies the patch body `patch` of type `kind` to `original` and returns the patched
/// object. `def` is the OpenAPI definition name of the object's kind
/// (`io.k8s.api.core.v1.Pod`) for built-in kinds, `None` for custom resources (which refuse
/// strategic merge patches, as in kube-apiserver).
pub fn apply(
    kind: PatchType,
    original: &Value,
    patch: &[u8],
    def: Option<&str>,
) -> Result<Value, PatchError> {
    match kind {
        PatchType::Json => apply_json(original, patch),
        PatchType::Merge => apply_merge(original, patch),
        PatchType::Strategic => strategic::apply(
            original,
            patch,
            def.ok_or(PatchError::StrategicUnsupported)?,
        ),
        PatchType::Apply => Err(PatchError::Unsupported(kind)),
    }
}

/// RFC 6902: the operations apply in order, all or nothing.
fn apply_json(original: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_slice(patch).map_err(PatchError::MalformedBody)?;
    if ops.0.len() > JSON_PATCH_OPERATIONS_MAX {
        return Err(PatchError::TooManyOperations {
            count: ops.0.len(),
            max: JSON_PATCH_OPERATIONS_MAX,
        });
    }
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(PatchError::JsonPatchFailed)?;
    if !doc.is_object() {
        return Err(PatchError::unprocessable(
            "the patched document is not a JSON object",
        ));
    }
    Ok(doc)
}

/// RFC 7386: objects merge recursively, `null` deletes, everything else (lists too) replaces.
fn apply_merge(original: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(patch).map_err(PatchError::MalformedBody)?;
    if !patch.is_object() {
        return Err(PatchError::invalid("a merge patch must be a JSON object"));
    }
    let mut doc = original.clone();
    merge(&mut doc, patch);
    Ok(doc)
}

/// RFC 7386's `MergePatch(target, patch)`, consuming the patch: its values move into the
/// document instead of being copied (`json_patch::merge` takes the patch by reference and
/// clones every value it sets; a DeviceStatus patch is mostly a twin list, set whole).
/// Recursion is bounded by serde_json's nesting limit on the parsed patch.
fn merge(doc: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *doc = patch;
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(serde_json::Map::new());
    }
    let Value::Object(target) = doc else {
        return;
    };
    for (name, value) in patch {
        if value.is_null() {
            target.remove(&name);
        } else {
            merge(target.entry(name).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    /// Goal: the consuming merge is RFC 7386's, as `json_patch::merge` (which it replaced)
    /// computes it. Method: the RFC's Appendix A examples, each checked against the RFC's
    /// result and against `json_patch::merge`.
    #[test]
    fn merge_is_rfc_7386() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            let mut ours = target.clone();
            merge(&mut ours, patch.clone());
            assert_eq!(ours, want, "{target} + {patch}");
            let mut theirs = target.clone();
            json_patch::merge(&mut theirs, &patch);
            assert_eq!(ours, theirs, "{target} + {patch}");
        }
    }
}
