//! Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic merge
//! patch. (Being written; the contract below is fixed.)

/// How a list or map field is merged by a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchMeta {
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys`, `merge,retainKeys` or `replace`.
    pub strategy: &'static str,
    /// `x-kubernetes-patch-merge-key`: the field that identifies list elements (`name`).
    pub merge_key: Option<&'static str>,
}

/// Patch metadata of property `prop` of the OpenAPI definition `def`
/// (e.g. `("io.k8s.api.core.v1.PodSpec", "containers")` → merge on `name`).
pub fn patch_meta(def: &str, prop: &str) -> Option<PatchMeta> {
    let _ = (def, prop);
    None
}
