//! What kubelet resolves before it calls the runtime: a container's environment (`envFrom`,
//! `env` with `valueFrom`, `$(VAR)` expansion) and the pod's volumes materialised as files,
//! all read from the [`MetaStore`], so both work offline.
//!
//! Volumes live under `<root>/pods/<uid>/volumes/<name>/`: configMap and secret keys become
//! files (mode `defaultMode`/`items[].mode`, default 0644; written to a temporary name and
//! renamed, so a reader never sees half a file; keys that disappeared are removed), emptyDir
//! is an empty directory, hostPath is the host path itself.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::PermissionsExt,
    path::{Component, Path, PathBuf},
};

use base64::Engine as _;
use ke_proto::ResourceType;
use serde_json::{Map, Value};

use super::{
    runtime::Mount,
    spec::{Container, KeySelector, KeyToPath, PodDef, Volume},
};
use crate::metamanager::MetaStore;

/// kubelet's waiting reason when env or config cannot be resolved.
pub(crate) const CONFIG_ERROR: &str = "CreateContainerConfigError";
/// kubelet's waiting reason while volumes cannot be set up.
pub(crate) const CONTAINER_CREATING: &str = "ContainerCreating";

/// A container cannot start yet; the pod manager retries (and on every configmap/secret change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The waiting reason kubelet would report.
    pub(crate) reason: &'static str,
    /// The waiting message.
    pub(crate) message: String,
}

fn config_error(message: String) -> ConfigError {
    ConfigError {
        reason: CONFIG_ERROR,
        message,
    }
}

/// Which kind of object a reference points to.
#[derive(Debug, Clone, Copy)]
enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    fn kind(self) -> ResourceType {
        match self {
            Self::ConfigMap => ResourceType::ConfigMap,
            Self::Secret => ResourceType::Secret,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }
}

/// The string data of a configmap or secret: `data` (base64-decoded for secrets), plus
/// `binaryData` (configmaps) or `stringData` (secrets not yet normalised by an API server).
/// `None` if the object is not stored.
fn load_data(
    store: &MetaStore,
    ns: &str,
    src: Source,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    let obj = store
        .get(ns, &src.kind(), name)
        .map_err(|e| format!("reading {} {name:?}: {e}", src.label()))?;
    let Some(obj) = obj else { return Ok(None) };
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.decode(v).ok();
    let mut out = BTreeMap::new();
    let map = |k: &str| {
        obj.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(Map::new)
    };
    let (plain, encoded) = match src {
        Source::ConfigMap => (map("data"), map("binaryData")),
        Source::Secret => (map("stringData"), map("data")),
    };
    for (k, v) in encoded {
        if let Some(bytes) = v.as_str().and_then(b64) {
            out.insert(k, bytes);
        }
    }
    for (k, v) in plain {
        if let Some(s) = v.as_str() {
            out.insert(k, s.as_bytes().to_vec());
        }
    }
    Ok(Some(out))
}

/// The container's environment, in Kubernetes order: `envFrom` sources, then `env` entries
/// (each may refer to earlier ones with `$(VAR)`); a later name replaces an earlier one.
pub(crate) fn container_env(
    store: &MetaStore,
    pod: &PodDef,
    c: &Container,
    node_ip: Option<&str>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    for from in &c.env_from {
        let (src, r) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (Source::ConfigMap, r),
            (None, Some(r)) => (Source::Secret, r),
            (None, None) => continue,
        };
        let data = load_data(store, &pod.namespace, src, &r.name).map_err(config_error)?;
        let Some(data) = data else {
            if r.optional == Some(true) {
                continue;
            }
            return Err(config_error(format!(
                "{} {:?} not found",
                src.label(),
                r.name
            )));
        };
        let prefix = from.prefix.as_deref().unwrap_or_default();
        for (k, v) in data {
            let name = format!("{prefix}{k}");
            if !name.is_empty() && !name.contains('=') {
                set(&mut env, name, String::from_utf8_lossy(&v).into_owned());
            }
        }
    }
    for var in &c.env {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => Some(expand(v, &env)),
            (None, Some(from)) => env_source(store, pod, from, node_ip)?,
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
    match env.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    }
}

/// One `valueFrom`; `None` when an optional reference is missing (the variable is not set).
fn env_source(
    store: &MetaStore,
    pod: &PodDef,
    from: &super::spec::EnvVarSource,
    node_ip: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    let key_ref = |src: Source, sel: &KeySelector| -> Result<Option<String>, ConfigError> {
        let data = load_data(store, &pod.namespace, src, &sel.name).map_err(config_error)?;
        let optional = sel.optional == Some(true);
        match data.map(|d| d.get(&sel.key).cloned()) {
            Some(Some(v)) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
            _ if optional => Ok(None),
            None => Err(config_error(format!(
                "{} {:?} not found",
                src.label(),
                sel.name
            ))),
            Some(None) => Err(config_error(format!(
                "couldn't find key {} in {} {}/{}",
                sel.key,
                src.label(),
                pod.namespace,
                sel.name
            ))),
        }
    };
    if let Some(sel) = &from.config_map_key_ref {
        return key_ref(Source::ConfigMap, sel);
    }
    if let Some(sel) = &from.secret_key_ref {
        return key_ref(Source::Secret, sel);
    }
    if let Some(field) = &from.field_ref {
        return field_value(pod, &field.field_path, node_ip)
            .map(Some)
            .ok_or_else(|| config_error(format!("unsupported fieldPath {:?}", field.field_path)));
    }
    Ok(None)
}

/// The downward-API fields a process pod can know.
fn field_value(pod: &PodDef, path: &str, node_ip: Option<&str>) -> Option<String> {
    let meta_map = |map: &str, key: &str| {
        pod.object
            .pointer(&format!("/metadata/{map}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(Some(String::new()))
    };
    let bracket = |p: &str, map: &str| {
        p.strip_prefix(&format!("metadata.{map}['"))
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_owned)
    };
    match path {
        "metadata.name" => Some(pod.name.clone()),
        "metadata.namespace" => Some(pod.namespace.clone()),
        "metadata.uid" => Some(pod.uid.clone()),
        "spec.nodeName" => pod.spec.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.service_account_name.clone(),
        "status.hostIP" | "status.podIP" => node_ip.map(str::to_owned),
        p => {
            if let Some(k) = bracket(p, "labels") {
                meta_map("labels", &k)
            } else if let Some(k) = bracket(p, "annotations") {
                meta_map("annotations", &k)
            } else {
                None
            }
        }
    }
}

/// Kubernetes `$(VAR)` expansion: a defined variable is replaced, an undefined reference is
/// kept verbatim, `$$` is a literal `$`.
pub(crate) fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some((name, after)) = tail
            .strip_prefix("$(")
            .and_then(|t| t.find(')').map(|end| (&t[..end], &t[end + 1..])))
        {
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Materialises every volume of `pod` under `volumes_dir`; returns volume name → host path.
pub(crate) fn materialise_volumes(
    store: &MetaStore,
    pod: &PodDef,
    volumes_dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, ConfigError> {
    let mut paths = BTreeMap::new();
    for vol in &pod.spec.volumes {
        let fail = |message: String| ConfigError {
            reason: CONTAINER_CREATING,
            message: format!(
                "MountVolume.SetUp failed for volume {:?}: {message}",
                vol.name
            ),
        };
        let path = materialise_one(store, pod, vol, volumes_dir).map_err(fail)?;
        paths.insert(vol.name.clone(), path);
    }
    Ok(paths)
}

fn materialise_one(
    store: &MetaStore,
    pod: &PodDef,
    vol: &Volume,
    volumes_dir: &Path,
) -> Result<PathBuf, String> {
    if let Some(host) = &vol.host_path {
        return Ok(PathBuf::from(&host.path));
    }
    let dir = volumes_dir.join(safe_rel(&vol.name)?);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let (src, name, items, mode, optional) = match (&vol.config_map, &vol.secret) {
        (Some(cm), _) => (
            Source::ConfigMap,
            &cm.name,
            &cm.items,
            cm.default_mode,
            cm.optional,
        ),
        (None, Some(s)) => (
            Source::Secret,
            &s.secret_name,
            &s.items,
            s.default_mode,
            s.optional,
        ),
        (None, None) if vol.empty_dir.is_some() => return Ok(dir),
        (None, None) => return Err("unsupported volume source".to_owned()),
    };
    let data = load_data(store, &pod.namespace, src, name)?;
    let data = match data {
        Some(d) => d,
        None if optional == Some(true) => BTreeMap::new(),
        None => return Err(format!("{} {name:?} not found", src.label())),
    };
    let files = select_files(&data, items, mode.unwrap_or(0o644))?;
    write_files(&dir, &files)?;
    Ok(dir)
}

/// `(relative path, bytes, mode)` of every file: all keys, or just `items` (each must exist).
fn select_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    mode: u32,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    if items.is_empty() {
        return data
            .iter()
            .map(|(k, v)| Ok((safe_rel(k)?, v.clone(), mode)))
            .collect();
    }
    items
        .iter()
        .map(|item| {
            let bytes = data
                .get(&item.key)
                .ok_or_else(|| format!("key {:?} not found", item.key))?;
            Ok((
                safe_rel(&item.path)?,
                bytes.clone(),
                item.mode.unwrap_or(mode),
            ))
        })
        .collect()
}

fn write_files(dir: &Path, files: &[(PathBuf, Vec<u8>, u32)]) -> Result<(), String> {
    let io = |what: &Path, e: std::io::Error| format!("writing {}: {e}", what.display());
    let mut tops = BTreeSet::new();
    for (rel, bytes, mode) in files {
        let path = dir.join(rel);
        if let Some(top) = rel.components().next() {
            tops.insert(top.as_os_str().to_owned());
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(*mode)).map_err(|e| io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    }
    let entries = fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries.flatten() {
        if !tops.contains(&entry.file_name()) {
            let p = entry.path();
            let removed = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            removed.map_err(|e| io(&p, e))?;
        }
    }
    Ok(())
}

/// A relative path without `..`, absolute roots or empty segments.
pub(crate) fn safe_rel(p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(path.to_owned())
    } else {
        Err(format!("invalid relative path {p:?}"))
    }
}

/// The mounts of container `c`, given the materialised volumes.
pub(crate) fn container_mounts(
    c: &Container,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Mount>, ConfigError> {
    c.volume_mounts
        .iter()
        .map(|vm| {
            let base = volumes.get(&vm.name).ok_or_else(|| {
                config_error(format!("volumeMount {:?} names no volume", vm.name))
            })?;
            let host_path = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => base.join(safe_rel(sub).map_err(config_error)?),
                None => base.clone(),
            };
            Ok(Mount {
                container_path: vm.mount_path.clone(),
                host_path,
                read_only: vm.read_only == Some(true),
            })
        })
        .collect()
}

/// True if the pod refers to the configmap or secret `name` (env, envFrom or volumes).
pub(crate) fn references(pod: &PodDef, kind: &ResourceType, name: &str) -> bool {
    let spec = &pod.spec;
    let containers = spec.containers.iter().chain(&spec.init_containers);
    match kind {
        ResourceType::ConfigMap => {
            spec.volumes
                .iter()
                .any(|v| v.config_map.as_ref().is_some_and(|c| c.name == name))
                || containers.clone().any(|c| {
                    c.env_from
                        .iter()
                        .any(|f| f.config_map_ref.as_ref().is_some_and(|r| r.name == name))
                        || c.env.iter().any(|e| {
                            e.value_from
                                .as_ref()
                                .and_then(|f| f.config_map_key_ref.as_ref())
                                .is_some_and(|r| r.name == name)
                        })
                })
        }
        ResourceType::Secret => {
            spec.volumes
                .iter()
                .any(|v| v.secret.as_ref().is_some_and(|s| s.secret_name == name))
                || containers.clone().any(|c| {
                    c.env_from
                        .iter()
                        .any(|f| f.secret_ref.as_ref().is_some_and(|r| r.name == name))
                        || c.env.iter().any(|e| {
                            e.value_from
                                .as_ref()
                                .and_then(|f| f.secret_key_ref.as_ref())
                                .is_some_and(|r| r.name == name)
                        })
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: `$(VAR)` expansion follows Kubernetes. Method: table with defined, undefined,
    /// escaped and unterminated references.
    #[test]
    fn expansion_table() {
        let env = vec![
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "x y".to_owned()),
        ];
        let cases = [
            ("$(A)", "1"),
            ("pre-$(B)-post", "pre-x y-post"),
            ("$(C)", "$(C)"),
            ("$$(A)", "$(A)"),
            ("cost $5", "cost $5"),
            ("$(A", "$(A"),
            ("$(A)$(A)", "11"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env), want, "{input}");
        }
    }

    /// Goal: only plain relative paths are accepted for files and subPaths. Method: table.
    #[test]
    fn safe_relative_paths() {
        assert!(safe_rel("a/b").is_ok());
        for bad in ["", "/a", "../a", "a/../../b", "./a"] {
            assert!(safe_rel(bad).is_err(), "{bad}");
        }
    }
}
