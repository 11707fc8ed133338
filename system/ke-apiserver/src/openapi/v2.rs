//! Swagger 2.0 forms of the v3 schemas and operations, shaped for kubectl's v2 parser
//! (kube-openapi `pkg/util/proto/document.go`, `NewOpenAPIData`).
//!
//! That parser rejects the whole document on: a `$ref` with a `type` or `properties` beside it,
//! a reference outside `#/definitions/` or to a missing definition, more than one `type`, a
//! type other than object/array/string/number/integer/boolean, and an array without exactly one
//! `items` schema. It ignores `allOf`. So references are written bare (`{"$ref": ...,
//! "description": ...}`), `nullable`/`anyOf`/`oneOf`/`not`/non-reference `allOf` are dropped
//! (kube drops them too when publishing CRD schemas in v2), `type` lists collapse to their one
//! non-null member, and an array without `items` gets `items: {}` (an arbitrary value).

use crate::schema::{self, REF_PREFIX};
use serde_json::{Map, Value, json};

/// Prefix of references in a Swagger 2.0 document.
pub(crate) const V2_REF_PREFIX: &str = "#/definitions/";

/// Keys a v2 schema cannot carry.
const DROPPED: [&str; 6] = ["nullable", "anyOf", "oneOf", "not", "allOf", "$schema"];

/// Converts a v3 schema (as in [`schema::builtin_definitions`]) to its v2 form.
pub(crate) fn schema_v2(s: &Value) -> Value {
    let Value::Object(m) = s else {
        return json!({});
    };
    if let Some(name) = schema::ref_name(s) {
        return ref_v2(m, name);
    }
    if m.contains_key("$ref") {
        // A reference outside the definitions: unusable by kubectl, keep it an arbitrary value.
        return json!({});
    }
    let mut out = Map::new();
    for (k, v) in m {
        if DROPPED.contains(&k.as_str()) {
            continue;
        }
        let v = match k.as_str() {
            "properties" => map_values(v),
            "items" => items_v2(v),
            "additionalProperties" if v.is_object() => schema_v2(v),
            "type" => match single_type(v) {
                Some(t) => t.into(),
                None => continue,
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    fix_shape(&mut out);
    Value::Object(out)
}

/// A reference: only the target, the description and extensions survive.
fn ref_v2(m: &Map<String, Value>, name: &str) -> Value {
    let mut out = Map::new();
    out.insert("$ref".into(), format!("{V2_REF_PREFIX}{name}").into());
    for (k, v) in m {
        if k == "description" || k.starts_with("x-") {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn map_values(v: &Value) -> Value {
    match v {
        Value::Object(props) => Value::Object(
            props
                .iter()
                .map(|(k, s)| (k.clone(), schema_v2(s)))
                .collect(),
        ),
        _ => json!({}),
    }
}

fn items_v2(v: &Value) -> Value {
    match v {
        Value::Array(a) => a.first().map(schema_v2).unwrap_or_else(|| json!({})),
        other => schema_v2(other),
    }
}

/// The one non-null type of a `type` keyword, if there is exactly one.
fn single_type(v: &Value) -> Option<&str> {
    match v {
        Value::String(t) if t != "null" => Some(t),
        Value::Array(ts) => {
            let mut it = ts.iter().filter_map(Value::as_str).filter(|t| *t != "null");
            match (it.next(), it.next()) {
                (Some(t), None) => Some(t),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Makes arrays carry one `items` schema and drops `properties` from non-objects.
fn fix_shape(out: &mut Map<String, Value>) {
    let ty = out.get("type").and_then(Value::as_str).map(str::to_owned);
    match ty.as_deref() {
        Some("array") => {
            out.entry("items").or_insert_with(|| json!({}));
        }
        Some("object") | None => {}
        Some(_) => {
            out.remove("properties");
            out.remove("additionalProperties");
        }
    }
    if ty.as_deref() != Some("array") {
        out.remove("items");
    }
}

/// Converts every `$ref` of a v3 operation tree to the v2 prefix.
fn refs_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| match (k.as_str(), x.as_str()) {
                    ("$ref", Some(r)) => {
                        (k.clone(), r.replacen(REF_PREFIX, V2_REF_PREFIX, 1).into())
                    }
                    _ => (k.clone(), refs_v2(x)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(refs_v2).collect()),
        other => other.clone(),
    }
}

/// Converts a v3 path item (from [`super::paths`]) to Swagger 2.0.
pub(crate) fn path_item_v2(item: &Value) -> Value {
    let Value::Object(m) = item else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, v) in m {
        let v = if k == "parameters" {
            params_v2(v)
        } else {
            operation_v2(v)
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

fn params_v2(v: &Value) -> Value {
    let params = v.as_array().map(Vec::as_slice).unwrap_or_default();
    Value::Array(params.iter().map(param_v2).collect())
}

/// A v3 parameter: its `schema`'s `type` and `uniqueItems` move up beside `name` and `in`.
fn param_v2(p: &Value) -> Value {
    let Value::Object(m) = p else {
        return p.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("schema", Value::Object(s)) => {
                for key in ["type", "uniqueItems"] {
                    if let Some(x) = s.get(key) {
                        out.insert(key.into(), x.clone());
                    }
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A v3 operation: the request body becomes a `body` parameter, content types become
/// `consumes`/`produces`, and responses carry their schema directly.
fn operation_v2(op: &Value) -> Value {
    let Value::Object(m) = refs_v2(op) else {
        return json!({});
    };
    let mut out = Map::new();
    let mut params = m
        .get("parameters")
        .map(params_v2)
        .unwrap_or_else(|| json!([]));
    for (k, v) in &m {
        match k.as_str() {
            "parameters" => {}
            "requestBody" => {
                let (types, schema) = first_content(v);
                out.insert("consumes".into(), types);
                if let Value::Array(p) = &mut params {
                    p.insert(
                        0,
                        json!({"name": "body", "in": "body", "required": true,
                        "schema": schema}),
                    );
                }
            }
            "responses" => {
                let (responses, produces) = responses_v2(v);
                out.insert("responses".into(), responses);
                out.insert("produces".into(), produces);
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert("parameters".into(), params);
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

/// The media types of a `content` holder and the schema of its first entry.
fn first_content(v: &Value) -> (Value, Value) {
    let Some(Value::Object(content)) = v.get("content") else {
        return (json!([]), json!({}));
    };
    let types: Vec<Value> = content.keys().map(|k| k.clone().into()).collect();
    let schema = content
        .values()
        .next()
        .and_then(|c| c.get("schema"))
        .cloned();
    (Value::Array(types), schema.unwrap_or_else(|| json!({})))
}

fn responses_v2(v: &Value) -> (Value, Value) {
    let mut out = Map::new();
    let mut produces = json!([]);
    for (code, r) in v.as_object().into_iter().flatten() {
        let mut resp = Map::new();
        resp.insert(
            "description".into(),
            r.get("description").cloned().unwrap_or_default(),
        );
        if r.get("content").is_some() {
            let (types, schema) = first_content(r);
            resp.insert("schema".into(), schema);
            produces = types;
        }
        out.insert(code.clone(), Value::Object(resp));
    }
    (Value::Object(out), produces)
}
