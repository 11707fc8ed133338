//! Decoding of Kubernetes protobuf request bodies into their JSON form.
//!
//! Go clients (`kubectl create namespace|configmap|secret|serviceaccount`, controllers built
//! on client-go) send built-in kinds as `application/vnd.kubernetes.protobuf`. The server
//! works on JSON, so [`decode`] turns such a body into exactly the JSON the same Go object
//! would marshal to.
//!
//! Wire format: the magic `k8s\0`, then a `runtime.Unknown` message whose `typeMeta` names
//! the object's `apiVersion`/`kind` and whose `raw` holds the object's own message.
//!
//! Messages are decoded by prost into the k8s-pb types (field numbers and wire types come
//! from there); the Go JSON shape of each field (name, pointer, `omitempty`, inline), which
//! protobuf does not carry, comes from the table in `schema.rs`, and types with a custom Go
//! `MarshalJSON` are handled in `special.rs`.
//!
//! Supported kinds: core/v1 `Namespace`, `Node`, `Pod`, `ConfigMap`, `Secret`, `Service`,
//! `Endpoints`, `Event`, `ServiceAccount`, `Binding`; coordination.k8s.io/v1 `Lease`;
//! apiextensions.k8s.io/v1 `CustomResourceDefinition`; and `DeleteOptions` under any
//! apiVersion (client-go registers it in every group). Custom resources never come as
//! protobuf.

mod json;
mod schema;
mod special;

use k8s_pb::{
    api::{coordination::v1 as coordination, core::v1 as core},
    apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext,
    apimachinery::pkg::{apis::meta::v1 as meta, runtime},
};
use prost::Message;
use serde_json::Value;

use json::{FieldError, ToJson};

/// The four bytes that open every Kubernetes protobuf body.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be turned into JSON. Every variant is a client error (HTTP
/// 400); none is retryable with the same body.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("protobuf body does not start with the Kubernetes magic bytes \"k8s\\0\"")]
    MissingMagic,
    /// The bytes after the magic are not a `runtime.Unknown` message.
    #[error("protobuf body is not a valid runtime.Unknown envelope")]
    MalformedEnvelope {
        /// The protobuf decoding failure.
        #[source]
        source: prost::DecodeError,
    },
    /// The envelope does not name the object's apiVersion and kind.
    #[error("protobuf envelope does not set typeMeta apiVersion and kind")]
    MissingTypeMeta,
    /// The envelope's `contentEncoding` is set (such as gzip); none is supported.
    #[error("protobuf envelope content encoding {encoding:?} is not supported")]
    UnsupportedContentEncoding {
        /// The envelope's `contentEncoding`.
        encoding: String,
    },
    /// The envelope says its raw bytes are not protobuf.
    #[error("protobuf envelope content type {content_type:?} is not supported")]
    UnsupportedContentType {
        /// The envelope's `contentType`.
        content_type: String,
    },
    /// No protobuf schema is known for this apiVersion and kind.
    #[error("kind {kind:?} in apiVersion {api_version:?} cannot be decoded from protobuf")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The raw bytes are not a valid message of the named kind.
    #[error("protobuf body is not a valid {api_version} {kind} message")]
    MalformedMessage {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
        /// The protobuf decoding failure (it names the field path).
        #[source]
        source: prost::DecodeError,
    },
    /// A field decoded but has no JSON form (non-JSON raw extension, bad timestamp, ...).
    #[error("{api_version} {kind} field {path}: {reason}")]
    InvalidField {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
        /// The JSON path of the field, such as `spec.containers[0].ports[1].containerPort`.
        path: String,
        /// What is wrong with the value.
        reason: String,
    },
}

/// Decodes a Kubernetes protobuf body (`k8s\0` magic + runtime.Unknown envelope) into JSON.
///
/// The result is the object's Kubernetes JSON encoding, `apiVersion` and `kind` included.
///
/// # Errors
///
/// A [`ProtobufError`] naming what was wrong with the body; never panics on any input.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body
        .strip_prefix(&MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let unknown = runtime::Unknown::decode(envelope)
        .map_err(|source| ProtobufError::MalformedEnvelope { source })?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let (Some(api_version), Some(kind)) = (type_meta.api_version, type_meta.kind) else {
        return Err(ProtobufError::MissingTypeMeta);
    };
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::UnsupportedContentEncoding { encoding });
    }
    if let Some(content_type) = unknown
        .content_type
        .filter(|t| !t.is_empty() && t != CONTENT_TYPE)
    {
        return Err(ProtobufError::UnsupportedContentType { content_type });
    }
    let raw = unknown.raw.unwrap_or_default();
    let fields = match decode_object(&api_version, &kind, &raw) {
        Ok(fields) => fields,
        Err(ObjectError::UnknownKind) => {
            return Err(ProtobufError::UnknownKind { api_version, kind });
        }
        Err(ObjectError::Decode(source)) => {
            return Err(ProtobufError::MalformedMessage {
                api_version,
                kind,
                source,
            });
        }
        Err(ObjectError::Field(FieldError { path, reason })) => {
            return Err(ProtobufError::InvalidField {
                api_version,
                kind,
                path,
                reason,
            });
        }
    };
    let mut object = json::Obj::new();
    object.insert("apiVersion".to_owned(), Value::String(api_version));
    object.insert("kind".to_owned(), Value::String(kind));
    object.extend(fields);
    Ok(Value::Object(object))
}

/// Why the envelope's raw bytes did not decode.
enum ObjectError {
    UnknownKind,
    Decode(prost::DecodeError),
    Field(FieldError),
}

/// Decodes `raw` as the message registered for `api_version`/`kind`; returns its fields.
fn decode_object(api_version: &str, kind: &str, raw: &[u8]) -> Result<json::Obj, ObjectError> {
    match (api_version, kind) {
        (_, "DeleteOptions") => object::<meta::DeleteOptions>(raw),
        ("v1", "Namespace") => object::<core::Namespace>(raw),
        ("v1", "Node") => object::<core::Node>(raw),
        ("v1", "Pod") => object::<core::Pod>(raw),
        ("v1", "ConfigMap") => object::<core::ConfigMap>(raw),
        ("v1", "Secret") => object::<core::Secret>(raw),
        ("v1", "Service") => object::<core::Service>(raw),
        ("v1", "Endpoints") => object::<core::Endpoints>(raw),
        ("v1", "Event") => object::<core::Event>(raw),
        ("v1", "ServiceAccount") => object::<core::ServiceAccount>(raw),
        ("v1", "Binding") => object::<core::Binding>(raw),
        ("coordination.k8s.io/v1", "Lease") => object::<coordination::Lease>(raw),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            object::<apiext::CustomResourceDefinition>(raw)
        }
        _ => Err(ObjectError::UnknownKind),
    }
}

fn object<M: Message + Default + ToJson>(raw: &[u8]) -> Result<json::Obj, ObjectError> {
    let message = M::decode(raw).map_err(ObjectError::Decode)?;
    match message.to_json().map_err(ObjectError::Field)? {
        Value::Object(fields) => Ok(fields),
        // Every kind above is a struct, which the field table turns into an object.
        _ => Ok(json::Obj::new()),
    }
}
