//! Kubernetes semantics over the store: create, update, patch and delete with metadata rules,
//! optimistic concurrency, finalizers, validation and custom-resource registration.
//!
//! - [`error`]: [`ApiError`] and its `metav1.Status` form.
//! - [`meta`]: name and metadata rules.
//! - [`kinds`]: per-kind defaults and validation.

pub mod error;
mod kinds;
pub mod meta;

pub use error::ApiError;

use crate::{
    patch::{self, PatchType},
    registry::{self, Registry, ResourceInfo, SchemaSource},
    store::{Members, MutateError, Mutation, Obj, Store, StoreError, object_key},
};
use ke_core::{Clock, Entropy};
use serde_json::{Value, json};
use std::sync::Arc;

/// What `fieldValidation` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them and warn.
    #[default]
    Warn,
    /// Reject the request.
    Strict,
}

/// Options common to writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOpts {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// Unknown-field handling.
    pub field_validation: FieldValidation,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object (status changes are ignored when the kind has a status subresource).
    Main,
    /// The `status` subresource (only status changes).
    Status,
}

/// The result of a successful write.
#[derive(Debug)]
pub struct Written {
    /// The stored object.
    pub obj: Arc<Obj>,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
}

/// Kubernetes API semantics over a [`Store`].
pub struct Api {
    /// Object storage.
    pub store: Store,
    /// Served resources.
    pub registry: Registry,
    clock: Arc<dyn Clock>,
    entropy: Entropy,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

const NAMESPACES: &str = "core/namespaces";
const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";
/// Namespaces that always exist.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

impl Api {
    /// Wraps a store: registers stored CRDs and creates the system namespaces.
    pub fn new(store: Store, clock: Arc<dyn Clock>, entropy: Entropy) -> Result<Self, ApiError> {
        let api = Self {
            store,
            registry: Registry::with_builtins(),
            clock,
            entropy,
        };
        let (_, crds) = api.store.list(CRDS, None, None).map_err(store_err)?;
        for crd in crds {
            for info in registry::from_crd(&crd.value()) {
                api.registry.insert(info);
            }
        }
        let ns_info = api.resource("", "v1", "namespaces")?;
        for ns in SYSTEM_NAMESPACES {
            if api.store.get(NAMESPACES, ns).is_none() {
                let body = json!({"metadata": {"name": ns}});
                api.create(&ns_info, "", body, WriteOpts::default())?;
            }
        }
        Ok(api)
    }

    /// The wall clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// Looks up a served resource or fails with 404.
    pub fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceInfo>, ApiError> {
        self.registry
            .get(group, version, plural)
            .ok_or_else(|| ApiError::no_route(&format!("{group}/{version}/{plural}")))
    }

    /// Reads one object.
    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Arc<Obj>, ApiError> {
        self.store
            .get(&info.storage_prefix(), &object_key(ns, name))
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))
    }

    /// Creates an object.
    pub fn create(
        &self,
        info: &ResourceInfo,
        ns: &str,
        mut body: Value,
        opts: WriteOpts,
    ) -> Result<Written, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        meta::check_type_meta(info, &mut body)?;
        if body.get("metadata").is_none() {
            body["metadata"] = json!({});
        }
        meta::check_namespace(info, ns, &mut body)?;
        self.assign_name(info, &mut body)?;
        let warnings = self.check_fields(info, &body, None, opts)?;
        let name = meta::meta_str(&body, "name").to_owned();
        if info.namespaced && !ns.is_empty() && self.store.get(NAMESPACES, ns).is_none() {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
        let now = self.clock.now_rfc3339();
        kinds::prepare_create(info, &mut body, &now);
        let errs = kinds::validate(info, &body);
        if !errs.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, &errs));
        }
        let uid = self.entropy.uuid_v4();
        let obj = self.mutate(info, ns, &name, opts.dry_run, |prev, rv| {
            if prev.is_some() {
                return Err(ApiError::already_exists(&info.group, &info.plural, &name));
            }
            let m = &mut body["metadata"];
            m["uid"] = json!(uid);
            m["creationTimestamp"] = json!(now);
            m["resourceVersion"] = json!(rv.to_string());
            m["generation"] = json!(1);
            strip_server_fields(m);
            Ok(Some(Mutation::Put(body)))
        })?;
        let obj = obj.ok_or_else(|| ApiError::internal("create produced no object"))?;
        if !opts.dry_run {
            self.after_put(info, &obj);
        }
        Ok(Written { obj, warnings })
    }

    fn assign_name(&self, info: &ResourceInfo, body: &mut Value) -> Result<(), ApiError> {
        let m = &mut body["metadata"];
        if m["name"].as_str().is_none_or(str::is_empty) {
            match m["generateName"].as_str() {
                Some(g) if !g.is_empty() => {
                    m["name"] = json!(format!("{g}{}", self.entropy.suffix(5)))
                }
                _ => {
                    return Err(ApiError::invalid(
                        &info.group,
                        &info.kind,
                        "",
                        &[(
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            }
        }
        let name = m["name"].as_str().unwrap_or_default();
        let ok = if info.kind == "Namespace" {
            meta::is_dns_label(name)
        } else {
            meta::is_dns_subdomain(name)
        };
        if !ok {
            let why = format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
            );
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                name,
                &[("metadata.name".into(), why)],
            ));
        }
        Ok(())
    }

    /// Applies the request's field validation to `body`; with `old` (a patch of that stored
    /// object), only to the top-level fields the patch changed.
    fn check_fields(
        &self,
        info: &ResourceInfo,
        body: &Value,
        old: Option<&Value>,
        opts: WriteOpts,
    ) -> Result<Vec<String>, ApiError> {
        if opts.field_validation == FieldValidation::Ignore {
            return Ok(vec![]);
        }
        let unknown = match old {
            Some(old) => crate::openapi::unknown_fields_changed(info, body, old),
            None => crate::openapi::unknown_fields(info, body),
        };
        if unknown.is_empty() {
            return Ok(vec![]);
        }
        let msgs: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        if opts.field_validation == FieldValidation::Strict {
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                msgs.join(", ")
            )));
        }
        Ok(msgs)
    }

    /// Replaces an object (`PUT`), or its status.
    pub fn update(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        part: Part,
        mut body: Value,
        opts: WriteOpts,
    ) -> Result<Written, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        meta::check_type_meta(info, &mut body)?;
        meta::check_namespace(info, ns, &mut body)?;
        if meta::meta_str(&body, "name") != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let warnings = self.check_fields(info, &body, None, opts)?;
        let obj = self.mutate(info, ns, name, opts.dry_run, |prev, rv| {
            let prev = prev.ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            let want = meta::meta_str(&body, "resourceVersion");
            if !want.is_empty() && want != prev.rv.to_string() {
                let why = "the object has been modified; please apply your changes to the latest version and try again";
                return Err(ApiError::conflict(&info.group, &info.plural, name, why));
            }
            self.next_version(info, prev.value(), body, part, rv)
        })?;
        self.finish_write(info, ns, name, obj, warnings, opts)
    }

    /// Patches an object or its status.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per part of a PATCH request"
    )]
    pub fn patch(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        part: Part,
        kind: PatchType,
        body: &[u8],
        opts: WriteOpts,
    ) -> Result<Written, ApiError> {
        let def = match &info.schema {
            SchemaSource::Builtin(d) => Some(*d),
            SchemaSource::Crd(_) => None,
        };
        let mut warnings = Vec::new();
        let obj = self.mutate(info, ns, name, opts.dry_run, |prev, rv| {
            let prev = prev.ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            // A status write keeps everything but the status and the version: a merge or
            // strategic patch of it needs only those members parsed (a JSON patch may test
            // or move any path, so it gets the whole object).
            let members = (part == Part::Status && kind != PatchType::Json)
                .then(|| Members::of(prev))
                .flatten();
            let old = match &members {
                Some(m) => m.parse(&STATUS_WRITE_MEMBERS),
                None => prev.value(),
            };
            let mut new = patch::apply(kind, &old, body, def).map_err(patch_err)?;
            meta::check_type_meta(info, &mut new)?;
            meta::check_namespace(info, ns, &mut new)?;
            if meta::meta_str(&new, "name") != name {
                return Err(ApiError::bad_request("the name of the object cannot be changed by a patch"));
            }
            let want = meta::meta_str(&new, "resourceVersion");
            if !want.is_empty() && want != prev.rv.to_string() {
                let why = "the object has been modified; please apply your changes to the latest version and try again";
                return Err(ApiError::conflict(&info.group, &info.plural, name, why));
            }
            warnings = self.check_fields(info, &new, Some(&old), opts)?;
            match &members {
                Some(m) => Ok(status_version(prev, m, old, &mut new, rv)),
                None => self.next_version(info, old, new, part, rv),
            }
        })?;
        self.finish_write(info, ns, name, obj, warnings, opts)
    }

    fn finish_write(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        obj: Option<Arc<Obj>>,
        warnings: Vec<String>,
        opts: WriteOpts,
    ) -> Result<Written, ApiError> {
        let obj = match obj {
            Some(o) => o,
            // Unchanged: kube answers with the current object and does not bump the version.
            None => self.get(info, ns, name)?,
        };
        if !opts.dry_run {
            self.after_put(info, &obj);
        }
        Ok(Written { obj, warnings })
    }

    /// Computes the stored form of an update: server-owned fields kept, status or spec kept
    /// depending on the part, generation bumped on spec change, deletion finished when the
    /// last finalizer goes. `None` means nothing changed. `old` is the stored object, parsed
    /// for this write (a status update reuses it instead of copying it).
    fn next_version(
        &self,
        info: &ResourceInfo,
        old: Value,
        mut new: Value,
        part: Part,
        rv: u64,
    ) -> Result<Option<Mutation>, ApiError> {
        if part == Part::Status {
            // Everything but the status is the stored object's, so only the status can
            // differ (no metadata change, no generation bump, no finished deletion).
            let status = new
                .get_mut("status")
                .map(Value::take)
                .unwrap_or(Value::Null);
            if *old.get("status").unwrap_or(&Value::Null) == status {
                return Ok(None);
            }
            let mut out = old;
            out["status"] = status;
            strip_server_fields(&mut out["metadata"]);
            out["metadata"]["resourceVersion"] = json!(rv.to_string());
            return Ok(Some(Mutation::Put(out)));
        }
        let old = &old;
        if info.has_status {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        let om = &old["metadata"];
        let nm = &mut new["metadata"];
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match om.get(k) {
                Some(v) => nm[k] = v.clone(),
                None => {
                    if let Some(m) = nm.as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        strip_server_fields(nm);
        nm["resourceVersion"] = om["resourceVersion"].clone();
        if new == *old {
            return Ok(None);
        }
        if meta::spec_differs(&new, old) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let _ = info;
        if new["metadata"].get("deletionTimestamp").is_some() && meta::finalizers(&new).is_empty() {
            return Ok(Some(Mutation::Delete(new)));
        }
        Ok(Some(Mutation::Put(new)))
    }

    /// Deletes an object, honouring finalizers and preconditions. Returns its last state.
    pub fn delete(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> Result<Arc<Obj>, ApiError> {
        let pre = &options["preconditions"];
        let now = self.clock.now_rfc3339();
        let obj = self.mutate(info, ns, name, dry_run, |prev, rv| {
            let prev = prev.ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            let mut v = prev.value();
            if let Some(uid) = pre["uid"].as_str()
                && uid != meta::meta_str(&v, "uid") {
                    return Err(ApiError::conflict(&info.group, &info.plural, name, "Precondition failed: UID in precondition does not match the UID in record"));
                }
            if let Some(r) = pre["resourceVersion"].as_str()
                && r != prev.rv.to_string() {
                    return Err(ApiError::conflict(&info.group, &info.plural, name, "Precondition failed: ResourceVersion in precondition does not match the ResourceVersion in record"));
                }
            v["metadata"]["resourceVersion"] = json!(rv.to_string());
            if meta::finalizers(&v).is_empty() {
                return Ok(Some(Mutation::Delete(v)));
            }
            if v["metadata"].get("deletionTimestamp").is_some() {
                return Ok(None);
            }
            v["metadata"]["deletionTimestamp"] = json!(now);
            v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            Ok(Some(Mutation::Put(v)))
        })?;
        let obj = match obj {
            Some(o) => o,
            None => self.get(info, ns, name)?,
        };
        if !dry_run {
            self.after_delete(info, &obj)?;
        }
        Ok(obj)
    }

    fn mutate(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        dry_run: bool,
        f: impl FnOnce(Option<&Arc<Obj>>, u64) -> Result<Option<Mutation>, ApiError>,
    ) -> Result<Option<Arc<Obj>>, ApiError> {
        let ns = if info.namespaced { ns } else { "" };
        self.store
            .mutate(&info.storage_prefix(), &object_key(ns, name), dry_run, f)
            .map_err(|e| match e {
                MutateError::Rejected(e) => e,
                MutateError::Store(e) => store_err(e),
            })
    }

    /// Side effects of a stored object: CRDs (re)register their resources.
    fn after_put(&self, info: &ResourceInfo, obj: &Obj) {
        if info.storage_prefix() == CRDS {
            let v = obj.value();
            let group = v["spec"]["group"].as_str().unwrap_or_default();
            let plural = v["spec"]["names"]["plural"].as_str().unwrap_or_default();
            self.registry.remove_custom(group, plural);
            for r in registry::from_crd(&v) {
                self.registry.insert(r);
            }
        }
    }

    /// Side effects of a deletion that completed: a namespace takes its objects along; a CRD
    /// takes its custom resources along and stops being served.
    fn after_delete(&self, info: &ResourceInfo, obj: &Obj) -> Result<(), ApiError> {
        if self
            .store
            .get(
                &info.storage_prefix(),
                &object_key(&obj.namespace, &obj.name),
            )
            .is_some()
        {
            return Ok(()); // still finalizing
        }
        if info.storage_prefix() == NAMESPACES {
            for r in self.registry.all().iter().filter(|r| r.namespaced) {
                self.delete_all(r, Some(&obj.name))?;
            }
        } else if info.storage_prefix() == CRDS {
            let v = obj.value();
            let group = v["spec"]["group"].as_str().unwrap_or_default().to_owned();
            let plural = v["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if let Some(r) = self
                .registry
                .all()
                .into_iter()
                .find(|r| r.group == group && r.plural == plural)
            {
                self.delete_all(&r, None)?;
            }
            self.registry.remove_custom(&group, &plural);
        }
        Ok(())
    }

    /// Deletes every object of a resource (in a namespace). Finalizers are bypassed: the
    /// container of the objects is going away.
    pub fn delete_all(&self, info: &ResourceInfo, ns: Option<&str>) -> Result<usize, ApiError> {
        let (_, objs) = self
            .store
            .list(&info.storage_prefix(), ns, None)
            .map_err(store_err)?;
        let n = objs.len();
        for o in objs {
            self.mutate(info, &o.namespace, &o.name, false, |prev, rv| {
                let Some(prev) = prev else { return Ok(None) };
                let mut v = prev.value();
                v["metadata"]["resourceVersion"] = json!(rv.to_string());
                Ok(Some(Mutation::Delete(v)))
            })?;
        }
        Ok(n)
    }
}

/// The members a status write reads: the type for its checks, the metadata for the name
/// and version checks, and the status.
const STATUS_WRITE_MEMBERS: [&str; 4] = ["apiVersion", "kind", "metadata", "status"];

/// [`Api::next_version`] of a status write, built from the stored members: `old` holds
/// [`STATUS_WRITE_MEMBERS`] of `prev` and `new` the patched ones.
fn status_version(
    prev: &Obj,
    members: &Members<'_>,
    old: Value,
    new: &mut Value,
    rv: u64,
) -> Option<Mutation> {
    let status = new
        .get_mut("status")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if *old.get("status").unwrap_or(&Value::Null) == status {
        return None;
    }
    let mut metadata = match old {
        Value::Object(mut m) => m.remove("metadata").unwrap_or(Value::Null),
        _ => Value::Null,
    };
    strip_server_fields(&mut metadata);
    metadata["resourceVersion"] = json!(rv.to_string());
    Some(Mutation::PutBuilt(
        prev.with_status(rv, members, &metadata, &status),
    ))
}

fn strip_server_fields(meta: &mut Value) {
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
        m.remove("selfLink");
    }
}

fn patch_err(e: patch::PatchError) -> ApiError {
    e.into_api_error()
}

/// Maps a storage failure to an API error.
pub fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Gone { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        other => ApiError::internal(format!("storage error: {other}")),
    }
}
