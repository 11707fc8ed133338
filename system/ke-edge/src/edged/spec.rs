//! The part of a Kubernetes `v1.Pod` edged acts on: serde mirrors of the `PodSpec` fields
//! (camelCase, every field optional), plus the pod identity read from `metadata`. Fields this
//! module does not name are ignored.

use serde::Deserialize;
use serde_json::Value;

/// `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) enum RestartPolicy {
    /// Restart whatever the exit code (the Kubernetes default).
    #[default]
    Always,
    /// Restart only on a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// kubelet's `ShouldContainerBeRestarted` for a container that exited with `exit_code`.
    pub(crate) fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

/// `v1.PodSpec` (the fields edged uses).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PodSpec {
    pub(crate) containers: Vec<Container>,
    pub(crate) init_containers: Vec<Container>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) restart_policy: RestartPolicy,
    pub(crate) termination_grace_period_seconds: Option<i64>,
    pub(crate) node_name: Option<String>,
    pub(crate) service_account_name: Option<String>,
}

/// `v1.Container`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Container {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) command: Vec<String>,
    pub(crate) args: Vec<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) env: Vec<EnvVar>,
    pub(crate) env_from: Vec<EnvFromSource>,
    pub(crate) volume_mounts: Vec<VolumeMount>,
    pub(crate) image_pull_policy: Option<String>,
}

/// `v1.EnvVar`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct EnvVar {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) value_from: Option<EnvVarSource>,
}

/// `v1.EnvVarSource`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct EnvVarSource {
    pub(crate) config_map_key_ref: Option<KeySelector>,
    pub(crate) secret_key_ref: Option<KeySelector>,
    pub(crate) field_ref: Option<FieldSelector>,
}

/// `v1.ConfigMapKeySelector` / `v1.SecretKeySelector`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct KeySelector {
    pub(crate) name: String,
    pub(crate) key: String,
    pub(crate) optional: Option<bool>,
}

/// `v1.ObjectFieldSelector`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct FieldSelector {
    pub(crate) field_path: String,
}

/// `v1.EnvFromSource`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct EnvFromSource {
    pub(crate) prefix: Option<String>,
    pub(crate) config_map_ref: Option<NameRef>,
    pub(crate) secret_ref: Option<NameRef>,
}

/// `v1.ConfigMapEnvSource` / `v1.SecretEnvSource`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct NameRef {
    pub(crate) name: String,
    pub(crate) optional: Option<bool>,
}

/// `v1.VolumeMount`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct VolumeMount {
    pub(crate) name: String,
    pub(crate) mount_path: String,
    pub(crate) sub_path: Option<String>,
    pub(crate) read_only: Option<bool>,
}

/// `v1.Volume`: the sources edged can materialise.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Volume {
    pub(crate) name: String,
    pub(crate) config_map: Option<ConfigMapVolume>,
    pub(crate) secret: Option<SecretVolume>,
    pub(crate) empty_dir: Option<Value>,
    pub(crate) host_path: Option<HostPathVolume>,
}

/// `v1.ConfigMapVolumeSource`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ConfigMapVolume {
    pub(crate) name: String,
    pub(crate) items: Vec<KeyToPath>,
    pub(crate) default_mode: Option<u32>,
    pub(crate) optional: Option<bool>,
}

/// `v1.SecretVolumeSource`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct SecretVolume {
    pub(crate) secret_name: String,
    pub(crate) items: Vec<KeyToPath>,
    pub(crate) default_mode: Option<u32>,
    pub(crate) optional: Option<bool>,
}

/// `v1.HostPathVolumeSource`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct HostPathVolume {
    pub(crate) path: String,
}

/// `v1.KeyToPath`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct KeyToPath {
    pub(crate) key: String,
    pub(crate) path: String,
    pub(crate) mode: Option<u32>,
}

/// A pod as edged sees it: identity, spec and the stored object (for `fieldRef`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodDef {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) spec: PodSpec,
    /// `metadata.deletionTimestamp` is set: stop the containers, the cloud removes the pod.
    pub(crate) deleting: bool,
    /// Grace for stopping: `metadata.deletionGracePeriodSeconds`, else the spec's.
    pub(crate) grace_seconds: Option<i64>,
    /// The stored object.
    pub(crate) object: Value,
}

impl PodDef {
    /// Reads a stored pod. `None` if it has no name, namespace or uid, or its spec does not
    /// parse (the API server validated it, so this means a foreign writer).
    pub(crate) fn from_object(object: Value) -> Option<Self> {
        let meta = |f: &str| {
            object
                .pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let spec = PodSpec::deserialize(object.get("spec")?).ok()?;
        let deleting = object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        let grace_seconds = object
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .or(spec.termination_grace_period_seconds);
        Some(Self {
            namespace: meta("namespace")?,
            name: meta("name")?,
            uid: meta("uid")?,
            spec,
            deleting,
            grace_seconds,
            object,
        })
    }

    /// What decides whether running containers must be replaced: containers, volumes and the
    /// restart policy, as canonical JSON.
    pub(crate) fn fingerprint(&self) -> String {
        let spec = self.object.get("spec");
        let pick = |k: &str| spec.and_then(|s| s.get(k)).unwrap_or(&Value::Null);
        // The same text as the array of those values, written without copying them.
        let picked = [
            pick("containers"),
            pick("initContainers"),
            pick("volumes"),
            pick("restartPolicy"),
        ];
        serde_json::to_string(&picked).unwrap_or_default()
    }

    /// A short hash of [`Self::fingerprint`] (16 hex digits of its SHA-256): what a runtime
    /// labels its containers with, to recognise containers of this spec after a restart.
    pub(crate) fn spec_hash(fingerprint: &str) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(fingerprint.as_bytes());
        hex::encode(digest.get(..8).unwrap_or_default())
    }

    /// `<namespace>/<name>`, the manager's key.
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;
    use serde_json::json;

    /// Goal: the fingerprint, which runtimes keep as a container label (`spec_hash`) to
    /// recognise containers after a restart, stays the canonical JSON of the picked spec
    /// members: the text and the hash of a fixed pod are pinned. Method: a pod whose text
    /// has its keys out of order; compare with the array of the values written out.
    #[test]
    fn the_fingerprint_is_the_canonical_json_of_the_spec_members() {
        let text = r#"{"metadata":{"uid":"u","name":"p","namespace":"d"},"spec":{"restartPolicy":"Always","volumes":[{"name":"v","emptyDir":{}}],"containers":[{"name":"c","image":"i:1","env":[{"value":"1","name":"A"}]}],"nodeName":"n"}}"#;
        let object: Value = serde_json::from_str(text).unwrap();
        let def = PodDef::from_object(object.clone()).unwrap();
        let spec = &object["spec"];
        let old = json!([
            spec["containers"],
            Value::Null,
            spec["volumes"],
            spec["restartPolicy"]
        ]);
        assert_eq!(def.fingerprint(), old.to_string());
        assert_eq!(
            def.fingerprint(),
            r#"[[{"env":[{"name":"A","value":"1"}],"image":"i:1","name":"c"}],null,[{"emptyDir":{},"name":"v"}],"Always"]"#
        );
        assert_eq!(
            PodDef::spec_hash(&def.fingerprint()),
            PodDef::spec_hash(&old.to_string())
        );
        assert_eq!(
            (def.name.as_str(), def.spec.node_name.as_deref()),
            ("p", Some("n"))
        );
    }
}
