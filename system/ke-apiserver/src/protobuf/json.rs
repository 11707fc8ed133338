//! Go `encoding/json` semantics for decoded protobuf messages.
//!
//! A Kubernetes Go struct field serializes according to its Go shape, which protobuf does not
//! carry: a pointer is emitted whenever it is set (even to a zero value), a value field tagged
//! `omitempty` is dropped when zero, a value field without it is always emitted (a nil slice
//! or map as `null`), a struct is never dropped by `omitempty`, and an `inline` struct is
//! flattened into its parent. The per-field helpers below implement one mode each; the
//! [`k8s_json!`] table in `schema.rs` assigns a mode to every field of every message.
//!
//! Presence comes from protobuf: the Go marshaller writes every value field and only the set
//! pointers, so a present pointer field is "non-nil" and an absent value field is "zero".

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// A JSON object under construction.
pub(crate) type Obj = Map<String, Value>;

/// A value that has no JSON form (for example a raw extension that is not JSON).
#[derive(Debug)]
pub(crate) struct FieldError {
    /// Field path from the object root, such as `spec.containers[0].image`.
    pub(crate) path: String,
    /// What is wrong with the value.
    pub(crate) reason: String,
}

impl FieldError {
    /// An error on the value itself (its path is filled in by the enclosing fields).
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            reason: reason.into(),
        }
    }

    /// Prefixes the path with a field name.
    fn at(mut self, name: &str) -> Self {
        self.path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("{name}{}", self.path)
        } else {
            format!("{name}.{}", self.path)
        };
        self
    }

    /// Prefixes the path with a list index or map key.
    fn index(mut self, index: impl std::fmt::Display) -> Self {
        self.path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("[{index}]{}", self.path)
        } else {
            format!("[{index}].{}", self.path)
        };
        self
    }
}

/// Conversion of a decoded message or scalar to its Kubernetes JSON form.
pub(crate) trait ToJson {
    /// The JSON the Go type would marshal to.
    fn to_json(&self) -> Result<Value, FieldError>;
}

/// Go's zero-value test, used by `omitempty`.
pub(crate) trait Zero {
    /// True for `""`, `0`, `false` and empty byte strings.
    fn is_zero(&self) -> bool;
}

impl ToJson for String {
    fn to_json(&self) -> Result<Value, FieldError> {
        Ok(Value::String(self.clone()))
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Result<Value, FieldError> {
        Ok(Value::Bool(*self))
    }
}

impl ToJson for i32 {
    fn to_json(&self) -> Result<Value, FieldError> {
        Ok(Value::from(*self))
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Result<Value, FieldError> {
        Ok(Value::from(*self))
    }
}

/// Largest magnitude below which every integral `f64` is an exact integer.
const F64_EXACT_INT: f64 = 9_007_199_254_740_992.0;

impl ToJson for f64 {
    /// Integral values become JSON integers, as Go prints `float64(1)` as `1`.
    fn to_json(&self) -> Result<Value, FieldError> {
        if !self.is_finite() {
            return Err(FieldError::new(format!("{self} has no JSON form")));
        }
        if self.fract() == 0.0 && self.abs() < F64_EXACT_INT {
            #[allow(clippy::cast_possible_truncation)] // integral and below 2^53: exact
            return Ok(Value::from(*self as i64));
        }
        Number::from_f64(*self)
            .map(Value::Number)
            .ok_or_else(|| FieldError::new(format!("{self} has no JSON form")))
    }
}

impl ToJson for Vec<u8> {
    /// Go's `[]byte` marshals as standard base64.
    fn to_json(&self) -> Result<Value, FieldError> {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
}

impl<T: ToJson> ToJson for Box<T> {
    fn to_json(&self) -> Result<Value, FieldError> {
        (**self).to_json()
    }
}

impl Zero for String {
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl Zero for bool {
    fn is_zero(&self) -> bool {
        !*self
    }
}

impl Zero for i32 {
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl Zero for i64 {
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl Zero for f64 {
    fn is_zero(&self) -> bool {
        *self == 0.0
    }
}

impl Zero for Vec<u8> {
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

/// Go value scalar with `omitempty`: emitted when set and non-zero.
pub(crate) fn omit<T: ToJson + Zero>(
    obj: &mut Obj,
    name: &str,
    value: &Option<T>,
) -> Result<(), FieldError> {
    match value {
        Some(v) if !v.is_zero() => insert(obj, name, v),
        _ => Ok(()),
    }
}

/// Go pointer: emitted whenever set, zero values included.
pub(crate) fn ptr<T: ToJson>(
    obj: &mut Obj,
    name: &str,
    value: &Option<T>,
) -> Result<(), FieldError> {
    match value {
        Some(v) => insert(obj, name, v),
        None => Ok(()),
    }
}

/// Go pointer without `omitempty`: a nil pointer is `null`.
pub(crate) fn ptr_null<T: ToJson>(
    obj: &mut Obj,
    name: &str,
    value: &Option<T>,
) -> Result<(), FieldError> {
    match value {
        Some(v) => insert(obj, name, v),
        None => {
            obj.insert(name.to_owned(), Value::Null);
            Ok(())
        }
    }
}

/// Go value field without `omitempty`, or any struct value: always emitted, zero when unset.
pub(crate) fn req<T: ToJson + Default>(
    obj: &mut Obj,
    name: &str,
    value: &Option<T>,
) -> Result<(), FieldError> {
    match value {
        Some(v) => insert(obj, name, v),
        None => insert(obj, name, &T::default()),
    }
}

/// Go slice with `omitempty`: emitted when non-empty.
pub(crate) fn list_omit<T: ToJson>(
    obj: &mut Obj,
    name: &str,
    items: &[T],
) -> Result<(), FieldError> {
    if items.is_empty() {
        Ok(())
    } else {
        list_req(obj, name, items)
    }
}

/// Go slice without `omitempty`: a nil slice is `null`.
pub(crate) fn list_req<T: ToJson>(
    obj: &mut Obj,
    name: &str,
    items: &[T],
) -> Result<(), FieldError> {
    let value = if items.is_empty() {
        Value::Null
    } else {
        let list = items
            .iter()
            .enumerate()
            .map(|(i, item)| item.to_json().map_err(|e| e.index(i).at(name)))
            .collect::<Result<Vec<_>, _>>()?;
        Value::Array(list)
    };
    obj.insert(name.to_owned(), value);
    Ok(())
}

/// Go map with `omitempty`: emitted when non-empty.
pub(crate) fn map_omit<V: ToJson>(
    obj: &mut Obj,
    name: &str,
    entries: &BTreeMap<String, V>,
) -> Result<(), FieldError> {
    if entries.is_empty() {
        Ok(())
    } else {
        map_req(obj, name, entries)
    }
}

/// Go map without `omitempty`: a nil map is `null`.
pub(crate) fn map_req<V: ToJson>(
    obj: &mut Obj,
    name: &str,
    entries: &BTreeMap<String, V>,
) -> Result<(), FieldError> {
    let value = if entries.is_empty() {
        Value::Null
    } else {
        let mut map = Obj::new();
        for (key, entry) in entries {
            let json = entry.to_json().map_err(|e| e.index(key).at(name))?;
            map.insert(key.clone(), json);
        }
        Value::Object(map)
    };
    obj.insert(name.to_owned(), value);
    Ok(())
}

/// Go embedded struct tagged `json:",inline"`: its fields are flattened into the parent.
pub(crate) fn inline<T: ToJson + Default>(
    obj: &mut Obj,
    _name: &str,
    value: &Option<T>,
) -> Result<(), FieldError> {
    let json = match value {
        Some(v) => v.to_json()?,
        None => T::default().to_json()?,
    };
    if let Value::Object(fields) = json {
        obj.extend(fields);
    }
    Ok(())
}

fn insert<T: ToJson>(obj: &mut Obj, name: &str, value: &T) -> Result<(), FieldError> {
    let json = value.to_json().map_err(|e| e.at(name))?;
    obj.insert(name.to_owned(), json);
    Ok(())
}

/// Implements [`ToJson`] for a k8s-pb message from its field table.
///
/// Each row names the Rust field, its Go JSON name and its mode (a helper in this module).
/// The destructuring `let` is exhaustive, so a field added to k8s-pb without a row fails to
/// compile instead of being dropped silently.
macro_rules! k8s_json {
    ($ty:path { $($field:ident : $json:literal => $mode:ident,)* }) => {
        impl $crate::protobuf::json::ToJson for $ty {
            fn to_json(&self) -> Result<serde_json::Value, $crate::protobuf::json::FieldError> {
                let Self { $($field,)* } = self;
                #[allow(unused_mut)] // messages without fields
                let mut obj = $crate::protobuf::json::Obj::new();
                $( $crate::protobuf::json::$mode(&mut obj, $json, $field)?; )*
                Ok(serde_json::Value::Object(obj))
            }
        }
    };
}
pub(crate) use k8s_json;
