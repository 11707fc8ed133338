//! Rejections over HTTPS: requests the API server must refuse, sent raw (kube-rs `send`, so
//! the client interprets nothing) to an in-process server. Each check asserts the status
//! code, that the body is a `metav1.Status` with the right reason and message, and that
//! nothing was written: the store's resourceVersion and the target object are unchanged.

mod common;

use bytes::Bytes;
use common::TestServer;
use http::{Method, Request, StatusCode, header};
use ke_apiserver::api::WriteOpts;
use kube::client::Body;
use serde_json::{Value, json};

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
/// The config map every test starts with, and what rejected writes must leave alone.
const CM_PATH: &str = "/api/v1/namespaces/default/configmaps/cm";
const CM_PREFIX: &str = "core/configmaps";
const CM_KEY: &str = "default/cm";

/// A request to send, and the refusal expected for it.
struct Case<'a> {
    method: Method,
    path: &'a str,
    content_type: &'a str,
    body: Vec<u8>,
    code: u16,
    reason: &'a str,
    /// The start of the Status message.
    message: &'a str,
    /// An object the request would have created: it must not exist afterwards.
    absent: Option<(&'a str, &'a str)>,
}

/// A running server holding config map `cm` (version `rv` of the test's store) and an admin
/// client.
struct Fixture {
    _dir: tempfile::TempDir,
    s: TestServer,
    client: kube::Client,
}

async fn fixture() -> Fixture {
    let (dir, s) = common::start().await;
    let info = s
        .api
        .resource("", "v1", "configmaps")
        .expect("configmaps are served");
    let cm = json!({"metadata": {"name": "cm"}, "data": {"k": "v"}});
    s.api
        .create(&info, "default", cm, WriteOpts::default())
        .expect("create cm");
    let client = s.client().await;
    Fixture {
        _dir: dir,
        s,
        client,
    }
}

/// A client for `s` that sends no bearer token.
async fn anonymous_client(s: &TestServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&s.kubeconfig).expect("kubeconfig");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    cfg.auth_info.token = None;
    cfg.auth_info.token_file = None;
    kube::Client::try_from(cfg).expect("client")
}

/// Sends one request and returns the status and the body bytes.
async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    headers: &[(header::HeaderName, &str)],
    body: Vec<u8>,
) -> (StatusCode, Bytes) {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    let req = req.body(Body::from(body)).expect("a valid request");
    let resp = client.send(req).await.expect("the server answers");
    let status = resp.status();
    let body = resp
        .into_body()
        .collect_bytes()
        .await
        .expect("the body arrives");
    (status, body)
}

/// What a rejected request must not change: the store's version and the config map.
fn written_state(s: &TestServer) -> (u64, Option<Bytes>) {
    let cm = s.api.store.get(CM_PREFIX, CM_KEY).map(|o| o.json.clone());
    (s.api.store.current_rv(), cm)
}

/// Checks that `body` is a failure `metav1.Status` for `code` with `reason` and a message
/// starting with `message`; returns it for further checks.
fn assert_status(code: StatusCode, body: &[u8], want: u16, reason: &str, message: &str) -> Value {
    let status: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "the body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(code.as_u16(), want, "HTTP status; body: {status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["apiVersion"], "v1", "{status}");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["code"], want, "{status}");
    assert_eq!(status["reason"], reason, "{status}");
    let got = status["message"].as_str().unwrap_or_default();
    assert!(
        got.starts_with(message),
        "message {got:?} should start with {message:?}"
    );
    status
}

impl Fixture {
    /// Sends `case` with `client` and checks the refusal and that nothing was written.
    async fn reject_with(
        &self,
        client: &kube::Client,
        auth: Option<&str>,
        case: Case<'_>,
    ) -> Value {
        let before = written_state(&self.s);
        let mut headers = vec![(header::CONTENT_TYPE, case.content_type)];
        if let Some(a) = auth {
            headers.push((header::AUTHORIZATION, a));
        }
        let (code, body) = send(client, case.method, case.path, &headers, case.body).await;
        let status = assert_status(code, &body, case.code, case.reason, case.message);
        assert_eq!(
            written_state(&self.s),
            before,
            "a rejected request wrote nothing"
        );
        if let Some((prefix, key)) = case.absent {
            assert!(
                self.s.api.store.get(prefix, key).is_none(),
                "{key} was created"
            );
        }
        status
    }

    async fn reject(&self, case: Case<'_>) -> Value {
        self.reject_with(&self.client, None, case).await
    }

    /// The config map's current resourceVersion.
    fn cm_rv(&self) -> u64 {
        self.s
            .api
            .store
            .get(CM_PREFIX, CM_KEY)
            .expect("cm exists")
            .rv
    }
}

fn json_body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a Value serializes")
}

/// The body of a create of config map `name`.
fn create_cm(name: &str) -> Vec<u8> {
    json_body(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}))
}

/// Goal: requests without valid credentials are refused before anything else happens.
/// Method: a create sent by a client whose kubeconfig token was removed, then the same with a
/// wrong bearer token; both 401 `Unauthorized`, and the config map is not created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_token_is_401() {
    let f = fixture().await;
    let anonymous = anonymous_client(&f.s).await;
    for auth in [None, Some("Bearer not-the-token")] {
        let case = Case {
            method: Method::POST,
            path: "/api/v1/namespaces/default/configmaps",
            content_type: JSON,
            body: create_cm("x"),
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized",
            absent: Some((CM_PREFIX, "default/x")),
        };
        f.reject_with(&anonymous, auth, case).await;
    }
    f.s.stop().await;
}

/// Goal: a body that is not JSON is a 400, for creates and updates alike.
/// Method: a truncated JSON object POSTed as a create and PUT as an update of the config map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400() {
    let f = fixture().await;
    for (method, path) in [
        (Method::POST, "/api/v1/namespaces/default/configmaps"),
        (Method::PUT, CM_PATH),
    ] {
        let case = Case {
            method,
            path,
            content_type: JSON,
            body: br#"{"metadata": {"name": "cm", "#.to_vec(),
            code: 400,
            reason: "BadRequest",
            message: "Object 'Kind' is missing or the body is not valid JSON",
            absent: None,
        };
        f.reject(case).await;
    }
    f.s.stop().await;
}

/// Goal: a YAML body that does not parse is a 400.
/// Method: a create with `Content-Type: application/yaml` and an unterminated flow sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_yaml_is_400() {
    let f = fixture().await;
    let case = Case {
        method: Method::POST,
        path: "/api/v1/namespaces/default/configmaps",
        content_type: "application/yaml",
        body: b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n  labels: [a, b\n".to_vec(),
        code: 400,
        reason: "BadRequest",
        message: "error decoding YAML",
        absent: Some((CM_PREFIX, "default/y")),
    };
    f.reject(case).await;
    f.s.stop().await;
}

/// Goal: a resource that is not served is a 404, not a write anywhere.
/// Method: a create POSTed to `/api/v1/namespaces/default/widgets`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_resource_is_404() {
    let f = fixture().await;
    let case = Case {
        method: Method::POST,
        path: "/api/v1/namespaces/default/widgets",
        content_type: JSON,
        body: json_body(&json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}})),
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource",
        absent: None,
    };
    f.reject(case).await;
    f.s.stop().await;
}

/// Goal: optimistic concurrency on `PUT`: a stale resourceVersion is a 409 `Conflict`.
/// Method: update the config map once (so its version moves on), then PUT a changed body
/// carrying the old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_resource_version_on_put_is_409() {
    let f = fixture().await;
    let stale = f.cm_rv();
    let fresh = json!({"metadata": {"name": "cm", "resourceVersion": stale.to_string()},
        "data": {"k": "v2"}});
    let (code, _) = send(
        &f.client,
        Method::PUT,
        CM_PATH,
        &[(header::CONTENT_TYPE, JSON)],
        json_body(&fresh),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "the first update succeeds");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "resourceVersion": stale.to_string()},
        "data": {"k": "v3"}});
    let case = Case {
        method: Method::PUT,
        path: CM_PATH,
        content_type: JSON,
        body: json_body(&body),
        code: 409,
        reason: "Conflict",
        message: "Operation cannot be fulfilled on configmaps \"cm\": the object has been \
                  modified; please apply your changes to the latest version and try again",
        absent: None,
    };
    let status = f.reject(case).await;
    assert_eq!(status["details"]["name"], "cm");
    f.s.stop().await;
}

/// Goal: a merge patch that names a resourceVersion is conditional on it.
/// Method: a merge patch changing data with `metadata.resourceVersion` one below the
/// current version: 409 `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_resource_version_in_merge_patch_is_409() {
    let f = fixture().await;
    let stale = (f.cm_rv() - 1).to_string();
    let patch = json!({"metadata": {"resourceVersion": stale}, "data": {"k": "patched"}});
    let case = Case {
        method: Method::PATCH,
        path: CM_PATH,
        content_type: MERGE,
        body: json_body(&patch),
        code: 409,
        reason: "Conflict",
        message: "Operation cannot be fulfilled on configmaps \"cm\": the object has been modified",
        absent: None,
    };
    f.reject(case).await;
    f.s.stop().await;
}

/// Goal: a name that is not a DNS-1123 subdomain is a 422 `Invalid` with a field cause.
/// Method: create config map `Bad_Name`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_name_is_422() {
    let f = fixture().await;
    let case = Case {
        method: Method::POST,
        path: "/api/v1/namespaces/default/configmaps",
        content_type: JSON,
        body: create_cm("Bad_Name"),
        code: 422,
        reason: "Invalid",
        message: "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\"",
        absent: Some((CM_PREFIX, "default/Bad_Name")),
    };
    let status = f.reject(case).await;
    assert_eq!(
        status["details"]["causes"][0]["field"], "metadata.name",
        "{status}"
    );
    f.s.stop().await;
}

/// Goal: creating in a namespace that does not exist is a 404 naming the namespace.
/// Method: create a config map in `nope`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_in_missing_namespace_is_404() {
    let f = fixture().await;
    let case = Case {
        method: Method::POST,
        path: "/api/v1/namespaces/nope/configmaps",
        content_type: JSON,
        body: create_cm("x"),
        code: 404,
        reason: "NotFound",
        message: "namespaces \"nope\" not found",
        absent: Some((CM_PREFIX, "nope/x")),
    };
    let status = f.reject(case).await;
    assert_eq!(status["details"]["name"], "nope", "{status}");
    assert!(f.s.api.store.get("core/namespaces", "nope").is_none());
    f.s.stop().await;
}

/// Goal: a body over the 3 MiB request limit is a 413, not a partial write.
/// Method: create a config map whose data is 3 MiB + 1 KiB of JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let f = fixture().await;
    let big = "x".repeat(ke_core::limits::API_REQUEST_BYTES_MAX + 1024);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
        "data": {"k": big}});
    let case = Case {
        method: Method::POST,
        path: "/api/v1/namespaces/default/configmaps",
        content_type: JSON,
        body: json_body(&body),
        code: 413,
        reason: "RequestEntityTooLarge",
        message: "the request body is too large",
        absent: Some((CM_PREFIX, "default/big")),
    };
    f.reject(case).await;
    f.s.stop().await;
}

/// Goal: a JSON patch whose `test` operation fails is a 422 and changes nothing, including
/// the operations before the failing test.
/// Method: a JSON patch that replaces `data.k`, then tests `data.k` for a wrong value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_test_failure_is_422() {
    let f = fixture().await;
    let patch = json!([
        {"op": "replace", "path": "/data/k", "value": "changed"},
        {"op": "test", "path": "/data/k", "value": "something else"}
    ]);
    let case = Case {
        method: Method::PATCH,
        path: CM_PATH,
        content_type: "application/json-patch+json",
        body: json_body(&patch),
        code: 422,
        reason: "Invalid",
        message: "the JSON patch could not be applied",
        absent: None,
    };
    f.reject(case).await;
    f.s.stop().await;
}

/// A namespaced CRD `widgets.example.com` (v1, any fields).
fn widget_crd() -> Value {
    json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

/// Goal: custom resources refuse strategic merge patches (they have no patch metadata),
/// with 415 as kube-apiserver answers.
/// Method: install a CRD and one custom resource, then send it a strategic merge patch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategic_merge_patch_on_custom_resource_is_415() {
    let f = fixture().await;
    let api = &f.s.api;
    let crds = api
        .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CRDs are served");
    api.create(&crds, "", widget_crd(), WriteOpts::default())
        .expect("create the CRD");
    let widgets = api
        .resource("example.com", "v1", "widgets")
        .expect("the CRD is served");
    let w = json!({"metadata": {"name": "w1"}, "spec": {"size": 1}});
    api.create(&widgets, "default", w, WriteOpts::default())
        .expect("create a widget");
    let before = api
        .store
        .get("example.com/widgets", "default/w1")
        .expect("w1 exists");
    let case = Case {
        method: Method::PATCH,
        path: "/apis/example.com/v1/namespaces/default/widgets/w1",
        content_type: "application/strategic-merge-patch+json",
        body: json_body(&json!({"spec": {"size": 2}})),
        code: 415,
        reason: "UnsupportedMediaType",
        message: "strategic merge patch is not supported for custom resources",
        absent: None,
    };
    f.reject(case).await;
    let after = api
        .store
        .get("example.com/widgets", "default/w1")
        .expect("w1 exists");
    assert_eq!(after, before, "the custom resource is unchanged");
    f.s.stop().await;
}

/// Goal: other malformed writes are refused without writing: an unknown patch media type
/// (415), a stale delete precondition (409), a body of the wrong kind (400), a bad `dryRun`
/// value (400), a create whose protobuf body does not decode (400).
/// Method: one raw request each, against the config map or its collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_malformed_writes_are_refused() {
    let f = fixture().await;
    let stale = (f.cm_rv() - 1).to_string();
    let cases = [
        (
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "application/vnd.kubernetes.protobuf",
            b"k8s\x00not a protobuf Unknown".to_vec(),
            400,
            "BadRequest",
            "error decoding protobuf body",
        ),
        (
            Method::PATCH,
            CM_PATH,
            "text/plain",
            json_body(&json!({})),
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format",
        ),
        (
            Method::DELETE,
            CM_PATH,
            JSON,
            json_body(&json!({"preconditions": {"resourceVersion": stale}})),
            409,
            "Conflict",
            "Operation cannot be fulfilled on configmaps \"cm\": Precondition failed",
        ),
        (
            Method::PUT,
            CM_PATH,
            JSON,
            json_body(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cm"}})),
            400,
            "BadRequest",
            "the kind in the data (Secret) does not match",
        ),
        (
            Method::PUT,
            "/api/v1/namespaces/default/configmaps/cm?dryRun=Some",
            JSON,
            json_body(&json!({"metadata": {"name": "cm"}})),
            400,
            "BadRequest",
            "dryRun: unsupported value",
        ),
    ];
    for (method, path, content_type, body, code, reason, message) in cases {
        let case = Case {
            method,
            path,
            content_type,
            body,
            code,
            reason,
            message,
            absent: None,
        };
        f.reject(case).await;
    }
    f.s.stop().await;
}
