//! URL paths of the Kubernetes API, parsed into routes.

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz`
    Health,
    /// `/metrics`
    Metrics,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    GroupVersion(String, String),
    /// `/openapi/v2`
    OpenApiV2,
    /// `/openapi/v3`
    OpenApiV3Root,
    /// `/openapi/v3/<gv path>`
    OpenApiV3(String),
    /// A resource collection, object or subresource.
    Resource(ResourcePath),
}

/// A resource URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the URL, if any.
    pub namespace: Option<String>,
    /// Resource plural.
    pub plural: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource (`status`), if any.
    pub sub: Option<String>,
}

/// Parses a request path.
pub fn parse(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => Some(Route::Health),
        ["metrics"] => Some(Route::Metrics),
        ["api"] => Some(Route::CoreVersions),
        ["apis"] => Some(Route::Groups),
        ["apis", g] => Some(Route::Group((*g).into())),
        ["api", v] => Some(Route::GroupVersion(String::new(), (*v).into())),
        ["apis", g, v] => Some(Route::GroupVersion((*g).into(), (*v).into())),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["openapi", "v3"] => Some(Route::OpenApiV3Root),
        ["openapi", "v3", rest @ ..] => Some(Route::OpenApiV3(rest.join("/"))),
        ["api", v, rest @ ..] => resource("", v, rest),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => None,
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let owned = |s: &&str| (*s).to_owned();
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some((*ns).to_owned()), [&[*plural][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (p, None, None),
        [p, n] => (p, Some(owned(n)), None),
        [p, n, s] => (p, Some(owned(n)), Some(owned(s))),
        _ => return None,
    };
    if plural.is_empty() || name.as_deref() == Some("") {
        return None;
    }
    Some(Route::Resource(ResourcePath {
        group: group.into(),
        version: version.into(),
        namespace,
        plural: (*plural).into(),
        name,
        sub,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(g: &str, ns: Option<&str>, p: &str, n: Option<&str>, s: Option<&str>) -> Option<Route> {
        Some(Route::Resource(ResourcePath {
            group: g.into(),
            version: if g.is_empty() {
                "v1".into()
            } else {
                "v1beta1".into()
            },
            namespace: ns.map(Into::into),
            plural: p.into(),
            name: n.map(Into::into),
            sub: s.map(Into::into),
        }))
    }

    /// The irregular namespace paths resolve as kube resolves them.
    #[test]
    fn parses_kube_paths() {
        assert_eq!(
            parse("/api/v1/namespaces"),
            res("", None, "namespaces", None, None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/x"),
            res("", None, "namespaces", Some("x"), None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/x/status"),
            res("", None, "namespaces", Some("x"), Some("status"))
        );
        assert_eq!(
            parse("/api/v1/namespaces/d/pods"),
            res("", Some("d"), "pods", None, None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/d/pods/p/status"),
            res("", Some("d"), "pods", Some("p"), Some("status"))
        );
        assert_eq!(
            parse("/api/v1/nodes/n"),
            res("", None, "nodes", Some("n"), None)
        );
        assert_eq!(
            parse("/apis/devices.kubeedge.io/v1beta1/namespaces/d/devices"),
            res("devices.kubeedge.io", Some("d"), "devices", None, None)
        );
        assert_eq!(
            parse("/apis/g.io/v1"),
            Some(Route::GroupVersion("g.io".into(), "v1".into()))
        );
        assert_eq!(
            parse("/openapi/v3/apis/g.io/v1"),
            Some(Route::OpenApiV3("apis/g.io/v1".into()))
        );
        assert_eq!(parse("/api/v1/a/b/c/d"), None);
        assert_eq!(parse("/nope"), None);
    }
}
