//! `edgecore.yaml` loading: KubeEdge key names, defaults, unknown-key and type errors,
//! validation (issue #3, config).

use std::time::Duration;

use ke_edge::config::{ConfigError, EdgeCoreConfig, EdgedRuntime, parse_go_duration};

/// An edgecore.yaml as `keadm join` writes it, restricted to the keys edgefleet implements.
const KUBEEDGE_STYLE: &str = r#"
apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  aliasName: default
  dataSource: /var/lib/kubeedge/edgecore.db
  driverName: sqlite3
modules:
  deviceTwin:
    enable: true
  edgeHub:
    enable: true
    heartbeat: 15
    httpServer: https://192.168.1.10:10002
    messageBurst: 60
    messageQPS: 30
    projectID: e632aba927ea4ac2b575ec1603d56f10
    rotateCertificates: true
    tlsCaFile: /etc/kubeedge/ca/rootCA.crt
    tlsCertFile: /etc/kubeedge/certs/server.crt
    tlsPrivateKeyFile: /etc/kubeedge/certs/server.key
    token: 0123abcd.eyJhbGciOiJIUzI1NiJ9.e30.sig
    websocket:
      enable: true
      handshakeTimeout: 30
      readDeadline: 15
      server: 192.168.1.10:10000
      writeDeadline: 15
  edged:
    enable: true
    registerNodeNamespace: default
    tailoredKubeletConfig:
      nodeStatusUpdateFrequency: 10s
      nodeLeaseDurationSeconds: 40
    tailoredKubeletFlag:
      hostnameOverride: edge-1
      nodeIP: 192.168.1.21
      rootDirectory: /var/lib/kubelet
      nodeLabels:
        zone: a
  eventBus:
    enable: true
    mqttMode: 2
    mqttQOS: 0
    mqttServerExternal: tcp://127.0.0.1:1883
    mqttServerInternal: tcp://127.0.0.1:1884
    mqttSessionQueueSize: 100
  metaManager:
    enable: true
"#;

fn parse_error(text: &str) -> (String, Option<usize>) {
    match EdgeCoreConfig::from_yaml(text) {
        Err(ConfigError::Parse { message, line, .. }) => (message, line),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn named(node: &str) -> EdgeCoreConfig {
    let mut config = EdgeCoreConfig::default();
    config.modules.edged.tailored_kubelet_flag.hostname_override = node.to_owned();
    config
}

/// Goal: the defaults are KubeEdge's, valid once a node name is set, and survive `to_yaml` →
/// `from_yaml` unchanged. Method: compare known defaults, validate, round-trip.
#[test]
fn defaults_are_kubeedge_and_round_trip() {
    let config = EdgeCoreConfig::default();
    let hub = &config.modules.edge_hub;
    assert_eq!(hub.heartbeat, 15);
    assert_eq!(hub.message_qps, 30);
    assert_eq!(hub.message_burst, 60);
    assert_eq!(hub.project_id, "e632aba927ea4ac2b575ec1603d56f10");
    assert_eq!(hub.websocket.server, "127.0.0.1:10000");
    assert_eq!(hub.http_server, "https://127.0.0.1:10002");
    assert_eq!(config.database.driver_name, "sqlite3");
    assert_eq!(config.modules.edged.runtime, EdgedRuntime::Process);
    let period = config
        .modules
        .edged
        .tailored_kubelet_config
        .node_status_update_period();
    assert_eq!(period, Some(Duration::from_secs(10)));
    assert_eq!(config.modules.event_bus.mqtt_mode, 2);

    let yaml = config.to_yaml();
    for key in [
        "apiVersion:",
        "messageQPS:",
        "projectID:",
        "tlsCaFile:",
        "mqttQOS:",
        "runtime: process",
    ] {
        assert!(yaml.contains(key), "missing {key} in\n{yaml}");
    }
    assert_eq!(EdgeCoreConfig::from_yaml(&yaml).unwrap(), config);
    assert_eq!(EdgeCoreConfig::from_yaml("").unwrap(), config);

    let named = named("edge-1");
    named.validate().unwrap();
    assert_eq!(EdgeCoreConfig::from_yaml(&named.to_yaml()).unwrap(), named);
}

/// Goal: a realistic keadm-written edgecore.yaml parses with every value taken. Method: parse
/// the snippet above, check values that differ from the defaults, validate.
#[test]
fn kubeedge_style_file_parses() {
    let config = EdgeCoreConfig::from_yaml(KUBEEDGE_STYLE).unwrap();
    assert_eq!(config.node_name(), "edge-1");
    let flag = &config.modules.edged.tailored_kubelet_flag;
    assert_eq!(flag.node_ip, "192.168.1.21");
    assert_eq!(flag.node_labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(
        config.modules.edge_hub.websocket.server,
        "192.168.1.10:10000"
    );
    assert!(config.modules.edge_hub.token.starts_with("0123abcd."));
    config.validate().unwrap();

    let sim = EdgeCoreConfig::from_yaml("modules:\n  edged:\n    runtime: sim\n").unwrap();
    assert_eq!(sim.modules.edged.runtime, EdgedRuntime::Sim);
}

/// Goal: an unknown key is an error naming the key, its path and its line. Method: misspell
/// `heartbeat` under `modules.edgeHub` and use KubeEdge's flat `hostnameOverride` location.
#[test]
fn unknown_key_is_named_with_path_and_line() {
    let (message, line) = parse_error("modules:\n  edgeHub:\n    enable: true\n    heartbeet: 5\n");
    assert!(message.contains("heartbeet"), "{message}");
    assert!(message.contains("modules.edgeHub"), "{message}");
    assert!(message.contains("line 4"), "{message}");
    assert_eq!(line, Some(4));

    let (message, _) = parse_error("modules:\n  edged:\n    hostnameOverride: edge-1\n");
    assert!(
        message.contains("modules.edged") && message.contains("hostnameOverride"),
        "{message}"
    );

    let (message, _) = parse_error("modules:\n  edged:\n    runtime: docker\n");
    assert!(
        message.contains("modules.edged.runtime") && message.contains("docker"),
        "{message}"
    );
}

/// Goal: a wrong type errors with the key path. Method: a string where a number belongs and
/// a number too large for its field; inspect the messages.
#[test]
fn wrong_type_names_the_path() {
    let (message, line) = parse_error("modules:\n  edgeHub:\n    messageQPS: fast\n");
    assert!(message.contains("modules.edgeHub.messageQPS"), "{message}");
    assert_eq!(line, Some(3));

    let (message, _) = parse_error("modules:\n  eventBus:\n    mqttQOS: 300\n");
    assert!(message.contains("modules.eventBus.mqttQOS"), "{message}");
}

/// Goal: `validate` catches out-of-range and inconsistent values and names the field. Method:
/// one bad value per case on top of a named default configuration.
#[test]
fn validate_catches_bad_values() {
    let hub = "modules:\n  edgeHub:\n";
    let cases = [
        (
            "modules:\n  edged:\n    tailoredKubeletFlag:\n      hostnameOverride: \"\"\n",
            "modules.edged.tailoredKubeletFlag.hostnameOverride",
        ),
        ("kind: CloudCore\n", "kind"),
        ("database:\n  driverName: mysql\n", "database.driverName"),
        (
            &format!("{hub}    heartbeat: 0\n"),
            "modules.edgeHub.heartbeat",
        ),
        (
            &format!("{hub}    messageQPS: 0\n"),
            "modules.edgeHub.messageQPS",
        ),
        (
            &format!("{hub}    httpServer: http://1.2.3.4:10002\n"),
            "modules.edgeHub.httpServer",
        ),
        (
            &format!("{hub}    websocket:\n      server: 1.2.3.4\n"),
            "modules.edgeHub.websocket.server",
        ),
        (
            &format!("{hub}    websocket:\n      readDeadline: 0\n"),
            "modules.edgeHub.websocket.readDeadline",
        ),
        (
            "modules:\n  edged:\n    tailoredKubeletConfig:\n      nodeStatusUpdateFrequency: ten\n",
            "modules.edged.tailoredKubeletConfig.nodeStatusUpdateFrequency",
        ),
        (
            "modules:\n  eventBus:\n    mqttQOS: 3\n",
            "modules.eventBus.mqttQOS",
        ),
        (
            "modules:\n  eventBus:\n    mqttMode: 7\n",
            "modules.eventBus.mqttMode",
        ),
        (
            "modules:\n  eventBus:\n    mqttSessionQueueSize: 0\n",
            "modules.eventBus.mqttSessionQueueSize",
        ),
        (
            "modules:\n  eventBus:\n    mqttMode: 0\n    mqttServerInternal: \"\"\n",
            "modules.eventBus.mqttServerInternal",
        ),
    ];
    for (text, field) in cases {
        let mut config = EdgeCoreConfig::from_yaml(text).unwrap();
        if !text.contains("hostnameOverride") {
            config.modules.edged.tailored_kubelet_flag.hostname_override = "edge-1".to_owned();
        }
        match config.validate() {
            Err(ConfigError::Invalid { field: got, .. }) => assert_eq!(got, field, "for {text:?}"),
            other => panic!("expected a validation error for {text:?}, got {other:?}"),
        }
    }
    assert!(
        EdgeCoreConfig::default().validate().is_err(),
        "a node name is required"
    );
}

/// Goal: Go duration strings as KubeEdge writes them parse. Method: table of inputs.
#[test]
fn go_durations_parse() {
    assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_go_duration("5m0s"), Some(Duration::from_secs(300)));
    assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
    for bad in ["", "10", "s", "10x", "-1s", "ten"] {
        assert_eq!(parse_go_duration(bad), None, "{bad:?}");
    }
}

/// Goal: the `monitorServer` extension has documented defaults, parses, rejects unknown keys
/// and validates its address. Method: defaults, a file setting it, a typo, a bad address.
#[test]
fn monitor_server_extension() {
    let config = EdgeCoreConfig::default();
    assert!(config.monitor_server.enable);
    assert_eq!(config.monitor_server.bind_address, "127.0.0.1:10350");
    assert!(config.to_yaml().contains("monitorServer:"));

    let text = "monitorServer:\n  enable: false\n  bindAddress: 0.0.0.0:9100\n";
    let parsed = EdgeCoreConfig::from_yaml(text).unwrap();
    assert!(!parsed.monitor_server.enable);
    assert_eq!(
        parsed.monitor_server.bind_addr(),
        Some("0.0.0.0:9100".parse().unwrap())
    );

    let (message, _) = parse_error("monitorServer:\n  bindAdress: 1.2.3.4:1\n");
    assert!(message.contains("bindAdress"), "{message}");

    let mut bad = named("edge-1");
    bad.monitor_server.bind_address = "localhost".to_owned();
    match bad.validate() {
        Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "monitorServer.bindAddress"),
        other => panic!("expected an invalid bindAddress, got {other:?}"),
    }
    bad.monitor_server.enable = false;
    bad.validate().unwrap();
}

/// Goal: `runtime: remote` takes KubeEdge's `containerRuntimeEndpoint`, and only a unix socket
/// path is accepted. Method: parse a remote config; validate good and bad endpoints (the bad
/// ones name the key); the process runtime ignores the endpoint.
#[test]
fn remote_runtime_takes_a_unix_endpoint() {
    let mut cfg = named("edge-1");
    assert_eq!(
        cfg.modules
            .edged
            .tailored_kubelet_config
            .container_runtime_endpoint,
        "unix:///run/containerd/containerd.sock"
    );
    let text = "modules:\n  edged:\n    runtime: remote\n    tailoredKubeletConfig:\n      \
                containerRuntimeEndpoint: unix:///tmp/c.sock\n";
    let parsed = EdgeCoreConfig::from_yaml(text).expect("parses");
    assert_eq!(parsed.modules.edged.runtime, EdgedRuntime::Remote);
    cfg.modules.edged.runtime = EdgedRuntime::Remote;
    for good in ["unix:///tmp/c.sock", "/run/containerd/containerd.sock"] {
        good.clone_into(
            &mut cfg
                .modules
                .edged
                .tailored_kubelet_config
                .container_runtime_endpoint,
        );
        cfg.validate().expect(good);
    }
    for bad in ["tcp://127.0.0.1:1", "unix://relative.sock", "c.sock"] {
        bad.clone_into(
            &mut cfg
                .modules
                .edged
                .tailored_kubelet_config
                .container_runtime_endpoint,
        );
        let err = cfg.validate().expect_err(bad).to_string();
        assert!(err.contains("containerRuntimeEndpoint"), "{bad}: {err}");
    }
    cfg.modules.edged.runtime = EdgedRuntime::Process;
    cfg.validate()
        .expect("the process runtime ignores the endpoint");
}
