//! `cloudcore.yaml` loading: KubeEdge key names, defaults, unknown-key and type errors,
//! validation (issue #3, config).

use ke_cloud::config::{CloudCoreConfig, ConfigError};

/// A cloudcore.yaml as KubeEdge users write it, restricted to the keys edgefleet implements.
const KUBEEDGE_STYLE: &str = r#"
apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
commonConfig:
  tunnelPort: 10350
  monitorServer:
    bindAddress: 127.0.0.1:9091
kubeAPIConfig:
  burst: 200
  contentType: application/vnd.kubernetes.protobuf
  kubeConfig: /root/.kube/config
  master: ""
  qps: 100
modules:
  cloudHub:
    advertiseAddress:
    - 192.168.1.10
    dnsNames:
    - cloud.example.com
    edgeCertSigningDuration: 365
    enable: true
    https:
      address: 0.0.0.0
      enable: true
      port: 10002
    keepaliveInterval: 30
    nodeLimit: 1000
    tlsCAFile: /etc/kubeedge/ca/rootCA.crt
    tlsCAKeyFile: /etc/kubeedge/ca/rootCA.key
    tlsCertFile: /etc/kubeedge/certs/server.crt
    tlsPrivateKeyFile: /etc/kubeedge/certs/server.key
    tokenRefreshDuration: 12
    websocket:
      address: 0.0.0.0
      enable: true
      port: 10000
    writeTimeout: 30
    authorization:
      enable: false
      debug: true
  edgeController:
    enable: true
    nodeUpdateFrequency: 10
  syncController:
    enable: true
  deviceController:
    enable: false
"#;

fn parse_error(text: &str) -> (String, Option<usize>) {
    match CloudCoreConfig::from_yaml(text) {
        Err(ConfigError::Parse { message, line, .. }) => (message, line),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// Goal: the defaults are KubeEdge's (plus edgefleet's authorization-on), valid, and survive
/// `to_yaml` → `from_yaml` unchanged. Method: compare known defaults, validate, round-trip.
#[test]
fn defaults_are_kubeedge_and_round_trip() {
    let config = CloudCoreConfig::default();
    let hub = &config.modules.cloud_hub;
    assert_eq!(hub.websocket.port, 10000);
    assert_eq!(hub.https.port, 10002);
    assert_eq!(hub.keepalive_interval, 30);
    assert_eq!(hub.node_limit, 500);
    assert_eq!(hub.edge_cert_signing_duration, 365);
    assert_eq!(hub.token_refresh_duration, 12);
    assert!(
        hub.authorization.enable,
        "node authorization is on by default (issue #3)"
    );
    assert_eq!(config.kube_api_config.burst, 5000);
    assert_eq!(
        config.common_config.monitor_server.bind_address,
        "127.0.0.1:9091"
    );
    assert_eq!(config.modules.edge_controller.node_update_frequency, 10);
    config.validate().unwrap();

    let yaml = config.to_yaml();
    for key in [
        "apiVersion:",
        "kubeAPIConfig:",
        "tlsCAFile:",
        "tlsCAKeyFile:",
        "nodeLimit:",
    ] {
        assert!(yaml.contains(key), "missing {key} in\n{yaml}");
    }
    assert_eq!(CloudCoreConfig::from_yaml(&yaml).unwrap(), config);
    assert_eq!(CloudCoreConfig::from_yaml("").unwrap(), config);
    assert_eq!(CloudCoreConfig::from_yaml("# nothing\n").unwrap(), config);
}

/// Goal: a realistic KubeEdge cloudcore.yaml parses with every value taken. Method: parse the
/// snippet above, check values that differ from the defaults, validate.
#[test]
fn kubeedge_style_file_parses() {
    let config = CloudCoreConfig::from_yaml(KUBEEDGE_STYLE).unwrap();
    let hub = &config.modules.cloud_hub;
    assert_eq!(hub.advertise_address, vec!["192.168.1.10".to_owned()]);
    assert_eq!(hub.dns_names, vec!["cloud.example.com".to_owned()]);
    assert_eq!(hub.node_limit, 1000);
    assert!(!hub.authorization.enable);
    assert!(hub.authorization.debug);
    assert_eq!(config.kube_api_config.kube_config, "/root/.kube/config");
    assert_eq!(config.kube_api_config.burst, 200);
    assert!(!config.modules.device_controller.enable);
    assert_eq!(
        hub.websocket.socket_addr().unwrap().to_string(),
        "0.0.0.0:10000"
    );
    config.validate().unwrap();
}

/// Goal: an unknown key is an error naming the key, its path and its line. Method: misspell
/// `nodeLimit` under `modules.cloudHub` and a top-level key; inspect the message and line.
#[test]
fn unknown_key_is_named_with_path_and_line() {
    let text = "modules:\n  cloudHub:\n    enable: true\n    nodeLimitt: 5\n";
    let (message, line) = parse_error(text);
    assert!(message.contains("nodeLimitt"), "{message}");
    assert!(message.contains("modules.cloudHub"), "{message}");
    assert!(message.contains("line 4"), "{message}");
    assert_eq!(line, Some(4));

    let (message, _) = parse_error("kubeApiConfig:\n  qps: 1\n");
    assert!(message.contains("kubeApiConfig"), "{message}");

    let err = CloudCoreConfig::from_yaml(text).unwrap_err().to_string();
    assert!(err.contains("nodeLimitt"), "{err}");
}

/// Goal: a wrong type errors with the key path. Method: a string where a number belongs and
/// an out-of-range port; inspect the messages.
#[test]
fn wrong_type_names_the_path() {
    let (message, line) = parse_error("modules:\n  cloudHub:\n    keepaliveInterval: thirty\n");
    assert!(
        message.contains("modules.cloudHub.keepaliveInterval"),
        "{message}"
    );
    assert_eq!(line, Some(3));

    let (message, _) = parse_error("modules:\n  cloudHub:\n    websocket:\n      port: 70000\n");
    assert!(
        message.contains("modules.cloudHub.websocket.port"),
        "{message}"
    );
}

fn invalid_field(text: &str) -> &'static str {
    let config = CloudCoreConfig::from_yaml(text).expect("case parses");
    match config.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected a validation error for {text:?}, got {other:?}"),
    }
}

/// Goal: `validate` catches out-of-range and inconsistent values and names the field. Method:
/// one bad value per case on top of the defaults.
#[test]
fn validate_catches_bad_values() {
    let cases = [
        ("apiVersion: v1\n", "apiVersion"),
        ("kind: EdgeCore\n", "kind"),
        (
            "modules:\n  cloudHub:\n    websocket:\n      port: 0\n",
            "modules.cloudHub.websocket.port",
        ),
        (
            "modules:\n  cloudHub:\n    https:\n      port: 10000\n",
            "modules.cloudHub.https.port",
        ),
        (
            "modules:\n  cloudHub:\n    keepaliveInterval: 0\n",
            "modules.cloudHub.keepaliveInterval",
        ),
        (
            "modules:\n  cloudHub:\n    nodeLimit: 0\n",
            "modules.cloudHub.nodeLimit",
        ),
        (
            "modules:\n  cloudHub:\n    advertiseAddress: []\n",
            "modules.cloudHub.advertiseAddress",
        ),
        (
            "modules:\n  cloudHub:\n    advertiseAddress: [cloud]\n",
            "modules.cloudHub.advertiseAddress",
        ),
        (
            "modules:\n  cloudHub:\n    websocket:\n      address: any\n",
            "modules.cloudHub.websocket.address",
        ),
        (
            "modules:\n  edgeController:\n    nodeUpdateFrequency: 0\n",
            "modules.edgeController.nodeUpdateFrequency",
        ),
        (
            "commonConfig:\n  monitorServer:\n    bindAddress: localhost\n",
            "commonConfig.monitorServer.bindAddress",
        ),
        ("kubeAPIConfig:\n  qps: 0\n", "kubeAPIConfig.qps"),
        (
            "kubeAPIConfig:\n  contentType: text/plain\n",
            "kubeAPIConfig.contentType",
        ),
    ];
    for (text, field) in cases {
        assert_eq!(invalid_field(text), field, "for {text:?}");
    }
    let disabled = "modules:\n  cloudHub:\n    enable: false\n    advertiseAddress: []\n";
    CloudCoreConfig::from_yaml(disabled)
        .unwrap()
        .validate()
        .unwrap();
}
