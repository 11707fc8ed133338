//! Label and field selectors, parsed from the `labelSelector` / `fieldSelector` query
//! parameters with Kubernetes' syntax.

use crate::store::{Labels, Obj};

/// A selector that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<(String, Op)>);

/// A parsed field selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| SelectorError(whole.to_owned()))?;
    Ok(inner
        .split(',')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect())
}

fn parse_requirement(r: &str) -> Result<(String, Op), SelectorError> {
    let err = || SelectorError(r.to_owned());
    if let Some(k) = r.strip_prefix('!') {
        let k = k.trim();
        return if valid_key(k) {
            Ok((k.to_owned(), Op::NotExists))
        } else {
            Err(err())
        };
    }
    for (tok, is_in) in [(" notin ", false), (" in ", true)] {
        if let Some(i) = r.find(tok) {
            let key = r[..i].trim();
            let set = parse_set(&r[i + tok.len()..], r)?;
            if !valid_key(key) {
                return Err(err());
            }
            return Ok((
                key.to_owned(),
                if is_in { Op::In(set) } else { Op::NotIn(set) },
            ));
        }
    }
    let (key, op) = if let Some((k, v)) = r.split_once("!=") {
        (k, Op::NotEq(v.trim().to_owned()))
    } else if let Some((k, v)) = r.split_once("==") {
        (k, Op::Eq(v.trim().to_owned()))
    } else if let Some((k, v)) = r.split_once('=') {
        (k, Op::Eq(v.trim().to_owned()))
    } else {
        (r, Op::Exists)
    };
    let key = key.trim();
    if !valid_key(key) {
        return Err(err());
    }
    Ok((key.to_owned(), op))
}

impl LabelSelector {
    /// Parses `app=web,tier!=db,env in (a,b),!legacy`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        split_top(s)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, op)| {
            let v = labels.get(k);
            match op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::NotEq(x) => v != Some(x.as_str()),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => !v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

impl FieldSelector {
    /// Parses `metadata.name=x,spec.nodeName!=y`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        split_top(s)
            .into_iter()
            .map(|r| {
                let (k, eq, v) = if let Some((k, v)) = r.split_once("!=") {
                    (k, false, v)
                } else if let Some((k, v)) = r.split_once("==") {
                    (k, true, v)
                } else if let Some((k, v)) = r.split_once('=') {
                    (k, true, v)
                } else {
                    return Err(SelectorError(r.to_owned()));
                };
                let k = k.trim();
                if !valid_key(k) {
                    return Err(SelectorError(r.to_owned()));
                }
                Ok((k.to_owned(), eq, v.trim().to_owned()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `obj` satisfies every requirement (a missing field compares as empty).
    pub fn matches(&self, obj: &Obj) -> bool {
        self.0
            .iter()
            .all(|(k, eq, v)| (obj.field(k).unwrap_or("") == v) == *eq)
    }
}

/// Both selectors of a list or watch request.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Whether `obj` is selected.
    pub fn matches(&self, obj: &Obj) -> bool {
        self.labels.matches(&obj.labels) && self.fields.matches(obj)
    }

    /// Whether every object is selected (no label and no field requirement).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every label operator of Kubernetes' selector grammar selects as kube does.
    #[test]
    fn label_operators() {
        let l: Labels = std::collections::BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("env".to_owned(), "prod".to_owned()),
        ])
        .into();
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "env in (prod, dev)",
            "x notin (a)",
            "app",
            "!x",
            "app=web,env=prod",
            "",
        ];
        let no = [
            "app=db",
            "env notin (prod)",
            "x",
            "!app",
            "env in (dev)",
            "app=web,env=dev",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
        assert!(LabelSelector::parse("a b=c").is_err());
        assert!(LabelSelector::parse("env in prod").is_err());
    }

    /// Field selectors compare the extracted fields, with a missing field as "".
    #[test]
    fn field_selectors() {
        let o = Obj::from_value(
            1,
            &json!({"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "edge-1"}, "status": {"phase": "Running"}}),
        );
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(m("metadata.name=p,metadata.namespace=ns"));
        assert!(m("spec.nodeName=edge-1,status.phase!=Pending"));
        assert!(!m("spec.nodeName=edge-2"));
        assert!(m("status.podIP="));
        assert!(FieldSelector::parse("spec.nodeName").is_err());
    }
}
