//! The HTTP face of the API server: routing, authentication, request decoding, and response
//! encoding (JSON, server-side Tables, watch streams).
//!
//! - [`route`]: URL parsing.
//! - [`discovery`]: discovery documents.
//! - [`table`]: server-side tables for `kubectl get`.
//! - [`watch`]: watch streams.
//! - [`metrics`]: request counters for `/metrics`.
//! - `pods` (private): the `pods/log` and `pods/exec` subresources (WebSocket exec).

pub mod discovery;
pub mod metrics;
mod pods;
pub mod route;
pub mod table;
mod watch;

use crate::{
    api::{Api, ApiError, FieldValidation, Part, WriteOpts, Written, store_err},
    auth::Auth,
    openapi::OpenApi,
    patch::PatchType,
    registry::ResourceInfo,
    selector::{FieldSelector, LabelSelector, Selectors},
    store::Obj,
};
use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    response::Response,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use route::{ResourcePath, Route};
use serde_json::{Value, json};
use std::{collections::BTreeMap, sync::Arc};
use tokio_util::sync::CancellationToken;

/// Everything a request handler needs.
pub struct HttpState {
    /// API semantics and storage.
    pub api: Arc<Api>,
    /// Who may call.
    pub auth: Auth,
    /// OpenAPI documents.
    pub openapi: OpenApi,
    /// Cancelled on shutdown: ends watch streams.
    pub shutdown: CancellationToken,
    /// Request counters.
    pub metrics: metrics::Metrics,
    /// Where `pods/log` and `pods/exec` go (set by the assembler, e.g. cloudcore).
    pub pod_streams: std::sync::RwLock<Option<Arc<dyn crate::streams::PodStreams>>>,
}

impl HttpState {
    /// The node-proxy seam, if one is set.
    pub fn pod_streams(&self) -> Option<Arc<dyn crate::streams::PodStreams>> {
        self.pod_streams.read().ok().and_then(|g| g.clone())
    }
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").finish_non_exhaustive()
    }
}

/// The axum router serving the whole API.
pub fn router(state: Arc<HttpState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

type Query = BTreeMap<String, String>;

fn query(req: &Request) -> Query {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

async fn handle(State(st): State<Arc<HttpState>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (verb, resp) = match dispatch(&st, req).await {
        Ok((verb, r)) => (verb, r),
        Err(e) => ("error", error_response(&e)),
    };
    st.metrics
        .observe(verb, method.as_str(), resp.status().as_u16());
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

async fn dispatch(st: &Arc<HttpState>, req: Request) -> Result<(&'static str, Response), ApiError> {
    let route =
        route::parse(req.uri().path()).ok_or_else(|| ApiError::no_route(req.uri().path()))?;
    let public = matches!(route, Route::Version | Route::Health);
    if !public {
        st.auth.authenticate(req.headers())?;
    }
    let accept = header_str(req.headers(), header::ACCEPT).to_owned();
    let out = match route {
        Route::Version => json_response(StatusCode::OK, &discovery::version()),
        Route::Health => text_response(StatusCode::OK, "ok".into(), "text/plain"),
        Route::Metrics => text_response(
            StatusCode::OK,
            st.metrics.render(&st.api),
            "text/plain; version=0.0.4",
        ),
        Route::CoreVersions => json_response(StatusCode::OK, &discovery::core_versions()),
        Route::Groups => json_response(StatusCode::OK, &discovery::groups(&st.api.registry)),
        Route::Group(g) => {
            let d = discovery::group(&st.api.registry, &g).ok_or_else(|| ApiError::no_route(&g))?;
            json_response(StatusCode::OK, &d)
        }
        Route::GroupVersion(g, v) => {
            let d = discovery::resource_list(&st.api.registry, &g, &v)
                .ok_or_else(|| ApiError::no_route(&format!("{g}/{v}")))?;
            json_response(StatusCode::OK, &d)
        }
        Route::OpenApiV2 => openapi_v2(st, &accept),
        Route::OpenApiV3Root => {
            let docs = st.openapi.documents(&st.api.registry);
            bytes_response(StatusCode::OK, docs.v3_root_json().clone())
        }
        Route::OpenApiV3(gv) => {
            let docs = st.openapi.documents(&st.api.registry);
            let doc = docs.v3_doc(&gv).ok_or_else(|| ApiError::no_route(&gv))?;
            bytes_response(StatusCode::OK, doc.json.clone())
        }
        Route::Resource(p) => return resource(st, p, req).await,
    };
    Ok(("discovery", out))
}

fn openapi_v2(st: &HttpState, accept: &str) -> Response {
    let docs = st.openapi.documents(&st.api.registry);
    if accept.contains("protobuf") {
        let mut r = Response::new(Body::from(docs.v2_protobuf().clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::openapi::V2_PROTOBUF_CONTENT_TYPE),
        );
        r
    } else {
        bytes_response(StatusCode::OK, docs.v2_json().clone())
    }
}

/// One resource request, parsed.
struct Ctx<'a> {
    st: &'a Arc<HttpState>,
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    ns: String,
    part: Part,
    headers: HeaderMap,
    q: Query,
    opts: WriteOpts,
}

impl Ctx<'_> {
    fn respond(
        &self,
        verb: &'static str,
        code: StatusCode,
        w: Written,
    ) -> (&'static str, Response) {
        let r = object_response(
            self.st,
            &self.info,
            &self.headers,
            code,
            &w.obj,
            &w.warnings,
        );
        (verb, r)
    }
}

async fn resource(
    st: &Arc<HttpState>,
    p: ResourcePath,
    req: Request,
) -> Result<(&'static str, Response), ApiError> {
    let info = st.api.resource(&p.group, &p.version, &p.plural)?;
    if p.namespace.is_some() && !info.namespaced {
        return Err(ApiError::no_route(req.uri().path()));
    }
    let pods = info.group.is_empty() && info.plural == "pods";
    if let (true, Some(ns), Some(name), Some(sub @ ("log" | "exec"))) = (
        pods,
        p.namespace.as_deref(),
        p.name.as_deref(),
        p.sub.as_deref(),
    ) {
        return match sub {
            "log" => Ok(("log", pods::log(st, ns, name, req).await?)),
            _ => Ok(("exec", pods::exec(st, ns, name, req).await?)),
        };
    }
    let part = match p.sub.as_deref() {
        None => Part::Main,
        Some("status") if info.has_status => Part::Status,
        Some(_) => return Err(ApiError::no_route(req.uri().path())),
    };
    let q = query(&req);
    let cx = Ctx {
        st,
        info,
        ns: p.namespace.clone().unwrap_or_default(),
        namespace: p.namespace,
        part,
        headers: req.headers().clone(),
        opts: write_opts(&q)?,
        q,
    };
    match p.name {
        Some(name) => object(cx, &name, req).await,
        None => collection(cx, req).await,
    }
}

async fn collection(cx: Ctx<'_>, req: Request) -> Result<(&'static str, Response), ApiError> {
    let (st, info, ns) = (cx.st, &cx.info, cx.namespace.as_deref());
    match req.method().clone() {
        Method::GET if is_true(cx.q.get("watch")) => {
            let r = watch::serve(
                st.clone(),
                info.clone(),
                cx.namespace.clone(),
                &cx.q,
                &cx.headers,
            )?;
            Ok(("watch", r))
        }
        Method::GET => Ok(("list", list(st, info, ns, &cx.q, &cx.headers)?)),
        Method::POST if info.namespaced && ns.is_none() => {
            Err(ApiError::method_not_allowed("POST"))
        }
        Method::POST => {
            let body = decode_body(&cx.headers, read_body(req).await?)?;
            let w = st.api.create(info, &cx.ns, body, cx.opts)?;
            Ok(cx.respond("create", StatusCode::CREATED, w))
        }
        Method::DELETE => {
            let n = delete_collection(st, info, ns, &cx.q)?;
            Ok((
                "deletecollection",
                json_response(StatusCode::OK, &collection_deleted(info, n)),
            ))
        }
        m => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

async fn object(
    cx: Ctx<'_>,
    name: &str,
    req: Request,
) -> Result<(&'static str, Response), ApiError> {
    let (api, info, ns) = (&cx.st.api, &*cx.info, cx.ns.as_str());
    match req.method().clone() {
        Method::GET => {
            let obj = api.get(info, ns, name)?;
            Ok(cx.respond(
                "get",
                StatusCode::OK,
                Written {
                    obj,
                    warnings: vec![],
                },
            ))
        }
        Method::PUT => {
            let body = decode_body(&cx.headers, read_body(req).await?)?;
            let w = api.update(info, ns, name, cx.part, body, cx.opts)?;
            Ok(cx.respond("update", StatusCode::OK, w))
        }
        Method::PATCH => {
            let kind = patch_type(&cx.headers)?;
            let body = read_body(req).await?;
            let w = api.patch(info, ns, name, cx.part, kind, &body, cx.opts)?;
            Ok(cx.respond("patch", StatusCode::OK, w))
        }
        Method::DELETE => {
            let body = read_body(req).await?;
            let options = if body.is_empty() {
                Value::Null
            } else {
                decode_body(&cx.headers, body)?
            };
            let obj = api.delete(info, ns, name, &options, cx.opts.dry_run)?;
            Ok(cx.respond(
                "delete",
                StatusCode::OK,
                Written {
                    obj,
                    warnings: vec![],
                },
            ))
        }
        m => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

fn patch_type(headers: &HeaderMap) -> Result<PatchType, ApiError> {
    let ct = header_str(headers, header::CONTENT_TYPE);
    let ct = ct.split(';').next().unwrap_or_default().trim();
    PatchType::from_content_type(ct).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/strategic-merge-patch+json (got {ct:?})"
        ))
    })
}

fn collection_deleted(info: &ResourceInfo, n: usize) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"kind": info.plural, "group": info.group},
        "message": format!("deleted {n} objects")})
}

fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

fn write_opts(q: &Query) -> Result<WriteOpts, ApiError> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Strict") => FieldValidation::Strict,
        Some(x) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: unsupported value {x:?}: supported values are \"Ignore\", \"Warn\", \"Strict\""
            )));
        }
    };
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(x) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: unsupported value {x:?}"
            )));
        }
    };
    Ok(WriteOpts {
        dry_run,
        field_validation,
    })
}

/// Parsed selectors of a list or watch request.
pub(crate) fn selectors(q: &Query) -> Result<Selectors, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Selectors { labels, fields })
}

fn list(
    st: &HttpState,
    info: &ResourceInfo,
    ns: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let sel = selectors(q)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let limit = limit.map(|l| l.min(ke_core::limits::LIST_PAGE_MAX));
    let (at, start) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let (rv, key) = decode_continue(c)?;
            (Some(rv), Some(key))
        }
        None => (exact_rv(q)?, None),
    };
    let prefix = info.storage_prefix();
    // kube-apiserver counts the remaining items only when nothing is filtered out.
    let count_rest = sel.is_empty();
    let query = crate::store::PageQuery {
        prefix: &prefix,
        namespace: ns,
        at,
        after: start.as_deref(),
        limit: limit.unwrap_or(usize::MAX),
        count_rest,
    };
    let page = st
        .api
        .store
        .list_page(&query, |o| sel.matches(o))
        .map_err(|e| match e {
            crate::store::StoreError::Gone { .. } if start.is_some() => ApiError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ),
            e => store_err(e),
        })?;
    let rv = page.rv;
    let mut list_meta = json!({"resourceVersion": rv.to_string()});
    if page.rest > 0
        && let Some(last) = page.items.last()
    {
        let key = crate::store::object_key(&last.namespace, &last.name);
        list_meta["continue"] = json!(encode_continue(rv, &key));
        if count_rest {
            list_meta["remainingItemCount"] = json!(page.rest);
        }
    }
    if table::wants_table(header_str(headers, header::ACCEPT)) {
        let t = table::table(info, &page.items, list_meta, st.api.clock().now_utc());
        return Ok(json_response(StatusCode::OK, &t));
    }
    Ok(list_response(info, &list_meta, page.items))
}

/// `resourceVersion` with `resourceVersionMatch=Exact` asks for a list at that version.
fn exact_rv(q: &Query) -> Result<Option<u64>, ApiError> {
    if q.get("resourceVersionMatch").map(String::as_str) != Some("Exact") {
        return Ok(None);
    }
    let rv = q.get("resourceVersion").map_or("", String::as_str);
    rv.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))
}

fn encode_continue(rv: u64, key: &str) -> String {
    use base64::Engine;
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_owned();
    Ok((rv, start))
}

fn list_response(info: &ResourceInfo, list_meta: &Value, items: Vec<Arc<Obj>>) -> Response {
    let head = json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": list_meta});
    let head = head.to_string();
    let mut out =
        Vec::with_capacity(head.len() + items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 16);
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&o.json);
    }
    out.extend_from_slice(b"]}");
    bytes_response(StatusCode::OK, out.into())
}

fn delete_collection(
    st: &HttpState,
    info: &ResourceInfo,
    ns: Option<&str>,
    q: &Query,
) -> Result<usize, ApiError> {
    let sel = selectors(q)?;
    let (_, objs) = st
        .api
        .store
        .list(&info.storage_prefix(), ns, None)
        .map_err(store_err)?;
    let mut n = 0;
    for o in objs.iter().filter(|o| sel.matches(o)) {
        match st
            .api
            .delete(info, &o.namespace, &o.name, &Value::Null, false)
        {
            Ok(_) => n += 1,
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let max = ke_core::limits::API_REQUEST_BYTES_MAX;
    axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: format!("the request body is too large (limit {max} bytes)"),
            details: None,
        })
}

/// Decodes a JSON or YAML request body.
fn decode_body(headers: &HeaderMap, body: Bytes) -> Result<Value, ApiError> {
    let ct = header_str(headers, header::CONTENT_TYPE);
    if ct.contains("yaml") {
        return serde_yaml::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    if ct.contains("protobuf") {
        return crate::protobuf::decode(&body).map_err(|e| {
            let mut msg = format!("error decoding protobuf body: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(cause) = src {
                msg = format!("{msg}: {cause}");
                src = cause.source();
            }
            ApiError::bad_request(msg)
        });
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "Object 'Kind' is missing or the body is not valid JSON: {e}"
        ))
    })
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn object_response(
    st: &HttpState,
    info: &ResourceInfo,
    headers: &HeaderMap,
    code: StatusCode,
    obj: &Obj,
    warnings: &[String],
) -> Response {
    let mut r = if table::wants_table(header_str(headers, header::ACCEPT)) {
        let t = table::table(
            info,
            &[Arc::new(obj.clone())],
            json!({"resourceVersion": obj.rv.to_string()}),
            st.api.clock().now_utc(),
        );
        json_response(code, &t)
    } else {
        bytes_response(code, obj.json.clone())
    };
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

fn bytes_response(code: StatusCode, body: bytes::Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    bytes_response(code, serde_json::to_vec(v).unwrap_or_default().into())
}

fn text_response(code: StatusCode, body: String, ct: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// The response for an error: its Status object with its code.
pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.status())
}
