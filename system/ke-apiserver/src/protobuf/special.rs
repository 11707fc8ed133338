//! Kubernetes types whose JSON form is not their protobuf structure (Go `MarshalJSON`).
//!
//! - `metav1.Time`: RFC 3339 in seconds, `null` when zero (an empty message); the protobuf
//!   nanoseconds are dropped, as the Go decoder does.
//! - `metav1.MicroTime`: RFC 3339 with six fractional digits, `null` when zero.
//! - `metav1.Duration`: Go's `time.Duration` string (`1h30m0s`).
//! - `metav1.FieldsV1`, `runtime.RawExtension`, apiextensions `JSON`: embedded JSON.
//! - `intstr.IntOrString`: a number or a string, per its type.
//! - `resource.Quantity`: its string, `"0"` when unset.
//! - apiextensions `JSONSchemaPropsOr{Array,Bool,StringArray}`: one of their alternatives.

use k8s_pb::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext,
    apimachinery::pkg::{api::resource, apis::meta::v1 as meta, runtime, util::intstr},
};
use serde_json::Value;
use time::{OffsetDateTime, macros::format_description};

use super::json::{FieldError, ToJson};

impl ToJson for meta::Time {
    fn to_json(&self) -> Result<Value, FieldError> {
        if self.seconds.is_none() && self.nanos.is_none() {
            return Ok(Value::Null);
        }
        let at = datetime(i128::from(self.seconds.unwrap_or(0)) * NANOS_PER_SECOND)?;
        let text = at
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .map_err(|e| FieldError::new(format!("formatting time: {e}")))?;
        Ok(Value::String(text))
    }
}

impl ToJson for meta::MicroTime {
    fn to_json(&self) -> Result<Value, FieldError> {
        if self.seconds.is_none() && self.nanos.is_none() {
            return Ok(Value::Null);
        }
        // Go truncates the nanoseconds towards zero to whole microseconds.
        let nanos = self.nanos.unwrap_or(0);
        let micros = i128::from(nanos - nanos % 1000);
        let at = datetime(i128::from(self.seconds.unwrap_or(0)) * NANOS_PER_SECOND + micros)?;
        let text = at
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .map_err(|e| FieldError::new(format!("formatting time: {e}")))?;
        Ok(Value::String(text))
    }
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A UTC instant with a four-digit year, the range RFC 3339 can express.
fn datetime(unix_nanos: i128) -> Result<OffsetDateTime, FieldError> {
    OffsetDateTime::from_unix_timestamp_nanos(unix_nanos)
        .ok()
        .filter(|at| (0..=9999).contains(&at.year()))
        .ok_or_else(|| FieldError::new("timestamp outside the years 0000-9999"))
}

impl ToJson for meta::Duration {
    fn to_json(&self) -> Result<Value, FieldError> {
        Ok(Value::String(go_duration(self.duration.unwrap_or(0))))
    }
}

/// Go's `time.Duration.String()`: `0s`, `1.5µs`, `100ms`, `1h2m3.5s`.
pub(crate) fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n == 0 {
        return "0s".to_owned();
    }
    if n < 1_000_000_000 {
        let (unit, scale) = match n {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", fraction(n, scale));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = n / 60_000_000_000 % 60;
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// `n / scale` in decimal without trailing fractional zeros (`1500, 1000` -> `1.5`).
fn fraction(n: u64, scale: u64) -> String {
    let whole = n / scale;
    let rest = n % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl ToJson for meta::FieldsV1 {
    fn to_json(&self) -> Result<Value, FieldError> {
        raw_json(self.raw.as_deref(), "FieldsV1")
    }
}

impl ToJson for runtime::RawExtension {
    fn to_json(&self) -> Result<Value, FieldError> {
        raw_json(self.raw.as_deref(), "RawExtension")
    }
}

impl ToJson for apiext::Json {
    fn to_json(&self) -> Result<Value, FieldError> {
        raw_json(self.raw.as_deref(), "JSON")
    }
}

/// Raw bytes that Go embeds verbatim: absent or empty is `null`, otherwise they must be JSON
/// (Go would re-encode CBOR or YAML; clients do not send those inside protobuf).
fn raw_json(raw: Option<&[u8]>, what: &str) -> Result<Value, FieldError> {
    match raw {
        None | Some([]) => Ok(Value::Null),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| FieldError::new(format!("{what} raw bytes are not JSON: {e}"))),
    }
}

impl ToJson for intstr::IntOrString {
    fn to_json(&self) -> Result<Value, FieldError> {
        match self.r#type.unwrap_or(0) {
            0 => Ok(Value::from(self.int_val.unwrap_or(0))),
            1 => Ok(Value::String(self.str_val.clone().unwrap_or_default())),
            other => Err(FieldError::new(format!(
                "IntOrString type {other} is neither 0 nor 1"
            ))),
        }
    }
}

impl ToJson for resource::Quantity {
    fn to_json(&self) -> Result<Value, FieldError> {
        match self.string.as_deref() {
            None => Ok(Value::String("0".to_owned())),
            Some("") => Err(FieldError::new("empty quantity")),
            Some(text) => Ok(Value::String(text.to_owned())),
        }
    }
}

impl ToJson for apiext::JsonSchemaPropsOrArray {
    fn to_json(&self) -> Result<Value, FieldError> {
        if self.j_son_schemas.is_empty() {
            self.schema
                .as_ref()
                .map_or(Ok(Value::Null), ToJson::to_json)
        } else {
            array(&self.j_son_schemas)
        }
    }
}

impl ToJson for apiext::JsonSchemaPropsOrBool {
    fn to_json(&self) -> Result<Value, FieldError> {
        match &self.schema {
            Some(schema) => schema.to_json(),
            None => Ok(Value::Bool(self.allows.unwrap_or(false))),
        }
    }
}

impl ToJson for apiext::JsonSchemaPropsOrStringArray {
    fn to_json(&self) -> Result<Value, FieldError> {
        if !self.property.is_empty() {
            return array(&self.property);
        }
        self.schema
            .as_ref()
            .map_or(Ok(Value::Null), ToJson::to_json)
    }
}

fn array<T: ToJson>(items: &[T]) -> Result<Value, FieldError> {
    items
        .iter()
        .map(ToJson::to_json)
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    /// Goal: `metav1.Duration` prints like Go's `time.Duration.String()`.
    /// Method: compare against strings Go prints for the same nanosecond counts.
    #[test]
    fn durations_print_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (100_000_000, "100ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-2_000_000_000, "-2s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(go_duration(nanos), text, "{nanos}ns");
        }
    }
}
