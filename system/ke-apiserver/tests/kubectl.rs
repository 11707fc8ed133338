//! Acceptance: the real `kubectl` 1.32 against the embedded API server, with default flags
//! (validation on, TLS verified against the server's CA, bearer token from the kubeconfig).

mod common;

use serde_json::Value;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n";

const POD_V1: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: demo
  labels:
    app: web
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: ["sleep", "3600"]
    env:
    - name: MODE
      value: one
"#;

const POD_V2: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: demo
  labels:
    app: web
  annotations:
    note: second
spec:
  containers:
  - name: app
    image: busybox:1.37
    command: ["sleep", "3600"]
    env:
    - name: MODE
      value: two
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Goal: everyday kubectl work lands as it would on kube-apiserver.
/// Method: create a namespace, apply a pod, label it by hand, apply a changed manifest, and
/// check the change landed while fields the manifest never named (the hand-made label, the
/// server's defaults) stayed; then `get -o json`, `label`, both patch types and `delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_everyday_workflow() {
    let (_dir, s) = common::start().await;
    s.kubectl_ok(&["create", "namespace", "demo"]).await;
    let out = s.kubectl_stdin_ok(&["apply", "-f", "-"], POD_V1).await;
    assert!(out.contains("pod/web created"), "{out}");
    s.kubectl_ok(&["label", "pod", "web", "-n", "demo", "tier=frontend"])
        .await;
    let out = s.kubectl_stdin_ok(&["apply", "-f", "-"], POD_V2).await;
    assert!(out.contains("pod/web configured"), "{out}");

    let pod = json(
        &s.kubectl_ok(&["get", "pod", "web", "-n", "demo", "-o", "json"])
            .await,
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "busybox:1.37", "the change landed");
    assert_eq!(c["env"][0]["value"], "two");
    assert_eq!(c["command"][1], "3600", "unchanged fields stay");
    assert_eq!(
        pod["metadata"]["labels"]["tier"], "frontend",
        "hand-made label stays"
    );
    assert_eq!(pod["metadata"]["labels"]["app"], "web");
    assert_eq!(pod["metadata"]["annotations"]["note"], "second");
    assert_eq!(
        pod["spec"]["restartPolicy"], "Always",
        "server defaults stay"
    );

    let list = json(
        &s.kubectl_ok(&["get", "pods", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["metadata"]["name"], "web");

    s.kubectl_ok(&[
        "patch",
        "pod",
        "web",
        "-n",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
    ])
    .await;
    s.kubectl_ok(&[
        "patch",
        "pod",
        "web",
        "-n",
        "demo",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/annotations/jp","value":"yes"}]"#,
    ])
    .await;
    let pod = json(
        &s.kubectl_ok(&["get", "pod", "web", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(pod["metadata"]["labels"]["patched"], "merge");
    assert_eq!(pod["metadata"]["annotations"]["jp"], "yes");

    let table = s.kubectl_ok(&["get", "pods", "-n", "demo"]).await;
    assert!(table.contains("NAME") && table.contains("web"), "{table}");

    let out = s.kubectl_ok(&["delete", "pod", "web", "-n", "demo"]).await;
    assert!(out.contains("deleted"), "{out}");
    let out = s.kubectl(&["get", "pod", "web", "-n", "demo"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

/// Reads concatenated JSON documents from a kubectl watch until `done` holds or time runs out.
async fn read_events(
    stdout: &mut tokio::process::ChildStdout,
    buf: &mut String,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut chunk = [0u8; 8192];
    loop {
        let events: Vec<Value> = serde_json::Deserializer::from_str(buf)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .collect();
        if done(&events) {
            return events;
        }
        let n = tokio::time::timeout_at(deadline, stdout.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("watch timed out; got so far:\n{buf}"))
            .expect("read watch output");
        assert!(n > 0, "kubectl watch ended early; got so far:\n{buf}");
        buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

/// Goal: `kubectl get pods -w` sees what happens after it started.
/// Method: start the watch, wait for the pod's initial event, then label, merge-patch,
/// JSON-patch and delete the pod, and read the events kubectl prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_sees_label_patch_delete() {
    let (_dir, s) = common::start().await;
    s.kubectl_stdin_ok(&["apply", "-f", "-"], NAMESPACE).await;
    s.kubectl_stdin_ok(&["apply", "-f", "-"], POD_V1).await;
    let mut child = s
        .kubectl_cmd(&[
            "get",
            "pods",
            "-n",
            "demo",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .spawn()
        .expect("kubectl watch starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = String::new();
    read_events(&mut stdout, &mut buf, |e| !e.is_empty()).await;

    s.kubectl_ok(&["label", "pod", "web", "-n", "demo", "seen=label"])
        .await;
    s.kubectl_ok(&[
        "patch",
        "pod",
        "web",
        "-n",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"annotations":{"seen":"patch"}}}"#,
    ])
    .await;
    s.kubectl_ok(&["delete", "pod", "web", "-n", "demo", "--wait=false"])
        .await;

    let events = read_events(&mut stdout, &mut buf, |e| {
        e.iter().any(|x| x["type"] == "DELETED")
    })
    .await;
    let _ = child.kill().await;
    let labelled = events.iter().position(|e| {
        e["type"] == "MODIFIED" && e["object"]["metadata"]["labels"]["seen"] == "label"
    });
    let patched = events.iter().position(|e| {
        e["type"] == "MODIFIED" && e["object"]["metadata"]["annotations"]["seen"] == "patch"
    });
    let deleted = events.iter().position(|e| e["type"] == "DELETED");
    assert!(
        labelled.is_some() && patched.is_some() && deleted.is_some(),
        "{events:#?}"
    );
    assert!(
        labelled < patched && patched < deleted,
        "events in order: {events:#?}"
    );
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: devices.devices.kubeedge.io
spec:
  group: devices.kubeedge.io
  names:
    kind: Device
    listKind: DeviceList
    plural: devices
    singular: device
  scope: Namespaced
  versions:
  - name: v1beta1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            properties:
              nodeName: {type: string}
              deviceModelRef:
                type: object
                properties:
                  name: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

const DEVICE: &str = r#"
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: thermo-1
  namespace: demo
spec:
  nodeName: edge-1
  deviceModelRef:
    name: thermometer
"#;

/// Goal: custom resources work end to end with kubectl.
/// Method: apply the CRD, then a custom resource of it, and read it back by its plural name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_crd_and_custom_resource() {
    let (_dir, s) = common::start().await;
    s.kubectl_stdin_ok(&["apply", "-f", "-"], NAMESPACE).await;
    let out = s.kubectl_stdin_ok(&["apply", "-f", "-"], CRD).await;
    assert!(out.contains("created"), "{out}");
    let out = s.kubectl_stdin_ok(&["apply", "-f", "-"], DEVICE).await;
    assert!(
        out.contains("device.devices.kubeedge.io/thermo-1 created"),
        "{out}"
    );
    let list = json(
        &s.kubectl_ok(&["get", "devices", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(list["items"][0]["spec"]["nodeName"], "edge-1");
    let names = s.kubectl_ok(&["get", "devices", "-n", "demo"]).await;
    assert!(names.contains("thermo-1"), "{names}");
    // A second apply with a change is a merge patch for custom resources.
    let changed = DEVICE.replace("edge-1", "edge-2");
    let out = s.kubectl_stdin_ok(&["apply", "-f", "-"], &changed).await;
    assert!(out.contains("configured"), "{out}");
    let d = json(
        &s.kubectl_ok(&["get", "device", "thermo-1", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(d["spec"]["nodeName"], "edge-2");
    assert_eq!(d["spec"]["deviceModelRef"]["name"], "thermometer");
}

/// Goal: `kubectl explain` works from the served OpenAPI documents.
/// Method: explain pod.spec and look for the field list with descriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_pod_spec() {
    let (_dir, s) = common::start().await;
    let out = s.kubectl_ok(&["explain", "pod.spec"]).await;
    assert!(out.contains("KIND:") && out.contains("Pod"), "{out}");
    assert!(out.contains("containers"), "{out}");
    assert!(out.contains("DESCRIPTION"), "{out}");
}

/// Goal: strict field validation is on by default, as with kube-apiserver.
/// Method: apply a pod with a misspelt field; kubectl must refuse it and name the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rejects_unknown_fields() {
    let (_dir, s) = common::start().await;
    s.kubectl_stdin_ok(&["apply", "-f", "-"], NAMESPACE).await;
    let bad = POD_V1.replace("image: busybox:1.36", "imagee: busybox:1.36");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &bad).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("imagee"), "{err}");
    let out = s.kubectl(&["get", "pod", "web", "-n", "demo"]).await;
    assert!(!out.status.success(), "nothing was written");
}

/// Goal: kubectl's typed `create` subcommands work; they send Kubernetes protobuf bodies.
/// Method: create a namespace, a configmap, a secret and a service account with
/// `kubectl create`, then read them back as JSON and check their data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_subcommands_send_protobuf() {
    let (_dir, s) = common::start().await;
    s.kubectl_ok(&["create", "namespace", "demo"]).await;
    s.kubectl_ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "demo",
        "--from-literal=mode=fast",
    ])
    .await;
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "pw",
        "-n",
        "demo",
        "--from-literal=k=v",
    ])
    .await;
    s.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "demo"])
        .await;
    let cm = json(
        &s.kubectl_ok(&["get", "configmap", "cfg", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(cm["data"]["mode"], "fast");
    let sec = json(
        &s.kubectl_ok(&["get", "secret", "pw", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(sec["data"]["k"], "dg==", "secret data is base64 of \"v\"");
    let sa = s
        .kubectl_ok(&["get", "serviceaccounts", "-n", "demo"])
        .await;
    assert!(sa.contains("robot"), "{sa}");
    let ns = s.kubectl_ok(&["get", "namespaces"]).await;
    assert!(ns.contains("demo") && ns.contains("Active"), "{ns}");
}

/// Goal: kubectl's chunked reads (`--chunk-size`, 500 by default) list every object once, in
/// order, as a table and as JSON. Method: seven configmaps, read in chunks of two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_in_chunks() {
    let (_dir, s) = common::start().await;
    s.kubectl_ok(&["create", "namespace", "demo"]).await;
    for i in 0..7 {
        let name = format!("cfg-{i}");
        s.kubectl_ok(&["create", "configmap", &name, "-n", "demo"])
            .await;
    }
    let list = json(
        &s.kubectl_ok(&[
            "get",
            "configmaps",
            "-n",
            "demo",
            "--chunk-size=2",
            "-o",
            "json",
        ])
        .await,
    );
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .filter(|n| n.starts_with("cfg-"))
        .collect();
    let want: Vec<String> = (0..7).map(|i| format!("cfg-{i}")).collect();
    assert_eq!(names, want, "every configmap once, in order");
    let table = s
        .kubectl_ok(&["get", "configmaps", "-n", "demo", "--chunk-size=2"])
        .await;
    for name in &want {
        assert_eq!(
            table
                .lines()
                .filter(|l| l.starts_with(&format!("{name} ")))
                .count(),
            1,
            "{name} once in the table:\n{table}"
        );
    }
}
