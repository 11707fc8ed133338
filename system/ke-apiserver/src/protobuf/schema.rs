//! Go JSON shape of every protobuf message reachable from the supported kinds.
//!
//! One `k8s_json!` row per field: Rust field of the k8s-pb message, the Go struct's JSON name,
//! and the mode that reproduces the Go field's JSON behaviour (see `json.rs`): `omit` (value
//! with `omitempty`), `ptr` (pointer), `ptr_null` (pointer without `omitempty`), `req` (value
//! without `omitempty`, or any struct), `list_*`/`map_*` (slices and maps; `_req` prints nil
//! as `null`), `inline` (embedded struct, flattened).
//!
//! The table was derived from the Go struct tags (`json:"..."`, pointer or not) of
//! Kubernetes 1.35 (`k8s.io/api`, `k8s.io/apimachinery`, `k8s.io/apiextensions-apiserver`
//! v0.35.7), the release k8s-pb 0.9 was generated from; it is a superset of 1.32. Types
//! with a custom Go `MarshalJSON` (times, quantities, raw JSON, ...) are in `special.rs`.
//! The exhaustive destructuring in `k8s_json!` makes a k8s-pb upgrade that adds a field fail
//! to compile until the field gets a row here.

use k8s_pb::{
    api::{coordination::v1 as coordination, core::v1 as core},
    apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext,
    apimachinery::pkg::apis::meta::v1 as meta,
};

use super::json::k8s_json;
k8s_json! { core::Namespace {
    metadata: "metadata" => req,
    spec: "spec" => req,
    status: "status" => req,
} }
k8s_json! { core::Node {
    metadata: "metadata" => req,
    spec: "spec" => req,
    status: "status" => req,
} }
k8s_json! { core::Pod {
    metadata: "metadata" => req,
    spec: "spec" => req,
    status: "status" => req,
} }
k8s_json! { core::ConfigMap {
    metadata: "metadata" => req,
    immutable: "immutable" => ptr,
    data: "data" => map_omit,
    binary_data: "binaryData" => map_omit,
} }
k8s_json! { core::Secret {
    metadata: "metadata" => req,
    immutable: "immutable" => ptr,
    data: "data" => map_omit,
    string_data: "stringData" => map_omit,
    r#type: "type" => omit,
} }
k8s_json! { core::Service {
    metadata: "metadata" => req,
    spec: "spec" => req,
    status: "status" => req,
} }
k8s_json! { core::Endpoints {
    metadata: "metadata" => req,
    subsets: "subsets" => list_omit,
} }
k8s_json! { core::Event {
    metadata: "metadata" => req,
    involved_object: "involvedObject" => req,
    reason: "reason" => omit,
    message: "message" => omit,
    source: "source" => req,
    first_timestamp: "firstTimestamp" => req,
    last_timestamp: "lastTimestamp" => req,
    count: "count" => omit,
    r#type: "type" => omit,
    event_time: "eventTime" => req,
    series: "series" => ptr,
    action: "action" => omit,
    related: "related" => ptr,
    reporting_component: "reportingComponent" => req,
    reporting_instance: "reportingInstance" => req,
} }
k8s_json! { core::ServiceAccount {
    metadata: "metadata" => req,
    secrets: "secrets" => list_omit,
    image_pull_secrets: "imagePullSecrets" => list_omit,
    automount_service_account_token: "automountServiceAccountToken" => ptr,
} }
k8s_json! { core::Binding {
    metadata: "metadata" => req,
    target: "target" => req,
} }
k8s_json! { coordination::Lease {
    metadata: "metadata" => req,
    spec: "spec" => req,
} }
k8s_json! { apiext::CustomResourceDefinition {
    metadata: "metadata" => req,
    spec: "spec" => req,
    status: "status" => req,
} }
k8s_json! { meta::DeleteOptions {
    grace_period_seconds: "gracePeriodSeconds" => ptr,
    preconditions: "preconditions" => ptr,
    orphan_dependents: "orphanDependents" => ptr,
    propagation_policy: "propagationPolicy" => ptr,
    dry_run: "dryRun" => list_omit,
    ignore_store_read_error_with_cluster_breaking_potential:
        "ignoreStoreReadErrorWithClusterBreakingPotential" => ptr,
} }
k8s_json! { meta::ObjectMeta {
    name: "name" => omit,
    generate_name: "generateName" => omit,
    namespace: "namespace" => omit,
    self_link: "selfLink" => omit,
    uid: "uid" => omit,
    resource_version: "resourceVersion" => omit,
    generation: "generation" => omit,
    creation_timestamp: "creationTimestamp" => req,
    deletion_timestamp: "deletionTimestamp" => ptr,
    deletion_grace_period_seconds: "deletionGracePeriodSeconds" => ptr,
    labels: "labels" => map_omit,
    annotations: "annotations" => map_omit,
    owner_references: "ownerReferences" => list_omit,
    finalizers: "finalizers" => list_omit,
    managed_fields: "managedFields" => list_omit,
} }
k8s_json! { core::NamespaceSpec {
    finalizers: "finalizers" => list_omit,
} }
k8s_json! { core::NamespaceStatus {
    phase: "phase" => omit,
    conditions: "conditions" => list_omit,
} }
k8s_json! { core::NodeSpec {
    pod_cidr: "podCIDR" => omit,
    pod_cid_rs: "podCIDRs" => list_omit,
    provider_id: "providerID" => omit,
    unschedulable: "unschedulable" => omit,
    taints: "taints" => list_omit,
    config_source: "configSource" => ptr,
    external_id: "externalID" => omit,
} }
k8s_json! { core::NodeStatus {
    capacity: "capacity" => map_omit,
    allocatable: "allocatable" => map_omit,
    phase: "phase" => omit,
    conditions: "conditions" => list_omit,
    addresses: "addresses" => list_omit,
    daemon_endpoints: "daemonEndpoints" => req,
    node_info: "nodeInfo" => req,
    images: "images" => list_omit,
    volumes_in_use: "volumesInUse" => list_omit,
    volumes_attached: "volumesAttached" => list_omit,
    config: "config" => ptr,
    runtime_handlers: "runtimeHandlers" => list_omit,
    features: "features" => ptr,
    declared_features: "declaredFeatures" => list_omit,
} }
k8s_json! { core::PodSpec {
    volumes: "volumes" => list_omit,
    init_containers: "initContainers" => list_omit,
    containers: "containers" => list_req,
    ephemeral_containers: "ephemeralContainers" => list_omit,
    restart_policy: "restartPolicy" => omit,
    termination_grace_period_seconds: "terminationGracePeriodSeconds" => ptr,
    active_deadline_seconds: "activeDeadlineSeconds" => ptr,
    dns_policy: "dnsPolicy" => omit,
    node_selector: "nodeSelector" => map_omit,
    service_account_name: "serviceAccountName" => omit,
    service_account: "serviceAccount" => omit,
    automount_service_account_token: "automountServiceAccountToken" => ptr,
    node_name: "nodeName" => omit,
    host_network: "hostNetwork" => omit,
    host_pid: "hostPID" => omit,
    host_ipc: "hostIPC" => omit,
    share_process_namespace: "shareProcessNamespace" => ptr,
    security_context: "securityContext" => ptr,
    image_pull_secrets: "imagePullSecrets" => list_omit,
    hostname: "hostname" => omit,
    subdomain: "subdomain" => omit,
    affinity: "affinity" => ptr,
    scheduler_name: "schedulerName" => omit,
    tolerations: "tolerations" => list_omit,
    host_aliases: "hostAliases" => list_omit,
    priority_class_name: "priorityClassName" => omit,
    priority: "priority" => ptr,
    dns_config: "dnsConfig" => ptr,
    readiness_gates: "readinessGates" => list_omit,
    runtime_class_name: "runtimeClassName" => ptr,
    enable_service_links: "enableServiceLinks" => ptr,
    preemption_policy: "preemptionPolicy" => ptr,
    overhead: "overhead" => map_omit,
    topology_spread_constraints: "topologySpreadConstraints" => list_omit,
    set_hostname_as_fqdn: "setHostnameAsFQDN" => ptr,
    os: "os" => ptr,
    host_users: "hostUsers" => ptr,
    scheduling_gates: "schedulingGates" => list_omit,
    resource_claims: "resourceClaims" => list_omit,
    resources: "resources" => ptr,
    hostname_override: "hostnameOverride" => ptr,
    workload_ref: "workloadRef" => ptr,
} }
k8s_json! { core::PodStatus {
    observed_generation: "observedGeneration" => omit,
    phase: "phase" => omit,
    conditions: "conditions" => list_omit,
    message: "message" => omit,
    reason: "reason" => omit,
    nominated_node_name: "nominatedNodeName" => omit,
    host_ip: "hostIP" => omit,
    host_ips: "hostIPs" => list_omit,
    pod_ip: "podIP" => omit,
    pod_ips: "podIPs" => list_omit,
    start_time: "startTime" => ptr,
    init_container_statuses: "initContainerStatuses" => list_omit,
    container_statuses: "containerStatuses" => list_omit,
    qos_class: "qosClass" => omit,
    ephemeral_container_statuses: "ephemeralContainerStatuses" => list_omit,
    resize: "resize" => omit,
    resource_claim_statuses: "resourceClaimStatuses" => list_omit,
    extended_resource_claim_status: "extendedResourceClaimStatus" => ptr,
    allocated_resources: "allocatedResources" => map_omit,
    resources: "resources" => ptr,
} }
k8s_json! { core::ServiceSpec {
    ports: "ports" => list_omit,
    selector: "selector" => map_omit,
    cluster_ip: "clusterIP" => omit,
    cluster_ips: "clusterIPs" => list_omit,
    r#type: "type" => omit,
    external_ips: "externalIPs" => list_omit,
    session_affinity: "sessionAffinity" => omit,
    load_balancer_ip: "loadBalancerIP" => omit,
    load_balancer_source_ranges: "loadBalancerSourceRanges" => list_omit,
    external_name: "externalName" => omit,
    external_traffic_policy: "externalTrafficPolicy" => omit,
    health_check_node_port: "healthCheckNodePort" => omit,
    publish_not_ready_addresses: "publishNotReadyAddresses" => omit,
    session_affinity_config: "sessionAffinityConfig" => ptr,
    ip_families: "ipFamilies" => list_omit,
    ip_family_policy: "ipFamilyPolicy" => ptr,
    allocate_load_balancer_node_ports: "allocateLoadBalancerNodePorts" => ptr,
    load_balancer_class: "loadBalancerClass" => ptr,
    internal_traffic_policy: "internalTrafficPolicy" => ptr,
    traffic_distribution: "trafficDistribution" => ptr,
} }
k8s_json! { core::ServiceStatus {
    load_balancer: "loadBalancer" => req,
    conditions: "conditions" => list_omit,
} }
k8s_json! { core::EndpointSubset {
    addresses: "addresses" => list_omit,
    not_ready_addresses: "notReadyAddresses" => list_omit,
    ports: "ports" => list_omit,
} }
k8s_json! { core::ObjectReference {
    kind: "kind" => omit,
    namespace: "namespace" => omit,
    name: "name" => omit,
    uid: "uid" => omit,
    api_version: "apiVersion" => omit,
    resource_version: "resourceVersion" => omit,
    field_path: "fieldPath" => omit,
} }
k8s_json! { core::EventSource {
    component: "component" => omit,
    host: "host" => omit,
} }
k8s_json! { core::EventSeries {
    count: "count" => omit,
    last_observed_time: "lastObservedTime" => req,
} }
k8s_json! { core::LocalObjectReference {
    name: "name" => omit,
} }
k8s_json! { coordination::LeaseSpec {
    holder_identity: "holderIdentity" => ptr,
    lease_duration_seconds: "leaseDurationSeconds" => ptr,
    acquire_time: "acquireTime" => ptr,
    renew_time: "renewTime" => ptr,
    lease_transitions: "leaseTransitions" => ptr,
    strategy: "strategy" => ptr,
    preferred_holder: "preferredHolder" => ptr,
} }
k8s_json! { apiext::CustomResourceDefinitionSpec {
    group: "group" => req,
    names: "names" => req,
    scope: "scope" => req,
    versions: "versions" => list_req,
    conversion: "conversion" => ptr,
    preserve_unknown_fields: "preserveUnknownFields" => omit,
} }
k8s_json! { apiext::CustomResourceDefinitionStatus {
    conditions: "conditions" => list_req,
    accepted_names: "acceptedNames" => req,
    stored_versions: "storedVersions" => list_req,
    observed_generation: "observedGeneration" => omit,
} }
k8s_json! { meta::Preconditions {
    uid: "uid" => ptr,
    resource_version: "resourceVersion" => ptr,
} }
k8s_json! { meta::OwnerReference {
    api_version: "apiVersion" => req,
    kind: "kind" => req,
    name: "name" => req,
    uid: "uid" => req,
    controller: "controller" => ptr,
    block_owner_deletion: "blockOwnerDeletion" => ptr,
} }
k8s_json! { meta::ManagedFieldsEntry {
    manager: "manager" => omit,
    operation: "operation" => omit,
    api_version: "apiVersion" => omit,
    time: "time" => ptr,
    fields_type: "fieldsType" => omit,
    fields_v1: "fieldsV1" => ptr,
    subresource: "subresource" => omit,
} }
k8s_json! { core::NamespaceCondition {
    r#type: "type" => req,
    status: "status" => req,
    last_transition_time: "lastTransitionTime" => req,
    reason: "reason" => omit,
    message: "message" => omit,
} }
k8s_json! { core::Taint {
    key: "key" => req,
    value: "value" => omit,
    effect: "effect" => req,
    time_added: "timeAdded" => ptr,
} }
k8s_json! { core::NodeConfigSource {
    config_map: "configMap" => ptr,
} }
k8s_json! { core::NodeCondition {
    r#type: "type" => req,
    status: "status" => req,
    last_heartbeat_time: "lastHeartbeatTime" => req,
    last_transition_time: "lastTransitionTime" => req,
    reason: "reason" => omit,
    message: "message" => omit,
} }
k8s_json! { core::NodeAddress {
    r#type: "type" => req,
    address: "address" => req,
} }
k8s_json! { core::NodeDaemonEndpoints {
    kubelet_endpoint: "kubeletEndpoint" => req,
} }
k8s_json! { core::NodeSystemInfo {
    machine_id: "machineID" => req,
    system_uuid: "systemUUID" => req,
    boot_id: "bootID" => req,
    kernel_version: "kernelVersion" => req,
    os_image: "osImage" => req,
    container_runtime_version: "containerRuntimeVersion" => req,
    kubelet_version: "kubeletVersion" => req,
    kube_proxy_version: "kubeProxyVersion" => req,
    operating_system: "operatingSystem" => req,
    architecture: "architecture" => req,
    swap: "swap" => ptr,
} }
k8s_json! { core::ContainerImage {
    names: "names" => list_req,
    size_bytes: "sizeBytes" => omit,
} }
k8s_json! { core::AttachedVolume {
    name: "name" => req,
    device_path: "devicePath" => req,
} }
k8s_json! { core::NodeConfigStatus {
    assigned: "assigned" => ptr,
    active: "active" => ptr,
    last_known_good: "lastKnownGood" => ptr,
    error: "error" => omit,
} }
k8s_json! { core::NodeRuntimeHandler {
    name: "name" => req,
    features: "features" => ptr,
} }
k8s_json! { core::NodeFeatures {
    supplemental_groups_policy: "supplementalGroupsPolicy" => ptr,
} }
k8s_json! { core::Volume {
    name: "name" => req,
    volume_source: "VolumeSource" => inline,
} }
k8s_json! { core::Container {
    name: "name" => req,
    image: "image" => omit,
    command: "command" => list_omit,
    args: "args" => list_omit,
    working_dir: "workingDir" => omit,
    ports: "ports" => list_omit,
    env_from: "envFrom" => list_omit,
    env: "env" => list_omit,
    resources: "resources" => req,
    resize_policy: "resizePolicy" => list_omit,
    restart_policy: "restartPolicy" => ptr,
    restart_policy_rules: "restartPolicyRules" => list_omit,
    volume_mounts: "volumeMounts" => list_omit,
    volume_devices: "volumeDevices" => list_omit,
    liveness_probe: "livenessProbe" => ptr,
    readiness_probe: "readinessProbe" => ptr,
    startup_probe: "startupProbe" => ptr,
    lifecycle: "lifecycle" => ptr,
    termination_message_path: "terminationMessagePath" => omit,
    termination_message_policy: "terminationMessagePolicy" => omit,
    image_pull_policy: "imagePullPolicy" => omit,
    security_context: "securityContext" => ptr,
    stdin: "stdin" => omit,
    stdin_once: "stdinOnce" => omit,
    tty: "tty" => omit,
} }
k8s_json! { core::EphemeralContainer {
    ephemeral_container_common: "EphemeralContainerCommon" => inline,
    target_container_name: "targetContainerName" => omit,
} }
k8s_json! { core::PodSecurityContext {
    se_linux_options: "seLinuxOptions" => ptr,
    windows_options: "windowsOptions" => ptr,
    run_as_user: "runAsUser" => ptr,
    run_as_group: "runAsGroup" => ptr,
    run_as_non_root: "runAsNonRoot" => ptr,
    supplemental_groups: "supplementalGroups" => list_omit,
    supplemental_groups_policy: "supplementalGroupsPolicy" => ptr,
    fs_group: "fsGroup" => ptr,
    sysctls: "sysctls" => list_omit,
    fs_group_change_policy: "fsGroupChangePolicy" => ptr,
    seccomp_profile: "seccompProfile" => ptr,
    app_armor_profile: "appArmorProfile" => ptr,
    se_linux_change_policy: "seLinuxChangePolicy" => ptr,
} }
k8s_json! { core::Affinity {
    node_affinity: "nodeAffinity" => ptr,
    pod_affinity: "podAffinity" => ptr,
    pod_anti_affinity: "podAntiAffinity" => ptr,
} }
k8s_json! { core::Toleration {
    key: "key" => omit,
    operator: "operator" => omit,
    value: "value" => omit,
    effect: "effect" => omit,
    toleration_seconds: "tolerationSeconds" => ptr,
} }
k8s_json! { core::HostAlias {
    ip: "ip" => req,
    hostnames: "hostnames" => list_omit,
} }
k8s_json! { core::PodDnsConfig {
    nameservers: "nameservers" => list_omit,
    searches: "searches" => list_omit,
    options: "options" => list_omit,
} }
k8s_json! { core::PodReadinessGate {
    condition_type: "conditionType" => req,
} }
k8s_json! { core::TopologySpreadConstraint {
    max_skew: "maxSkew" => req,
    topology_key: "topologyKey" => req,
    when_unsatisfiable: "whenUnsatisfiable" => req,
    label_selector: "labelSelector" => ptr,
    min_domains: "minDomains" => ptr,
    node_affinity_policy: "nodeAffinityPolicy" => ptr,
    node_taints_policy: "nodeTaintsPolicy" => ptr,
    match_label_keys: "matchLabelKeys" => list_omit,
} }
k8s_json! { core::PodOs {
    name: "name" => req,
} }
k8s_json! { core::PodSchedulingGate {
    name: "name" => req,
} }
k8s_json! { core::PodResourceClaim {
    name: "name" => req,
    resource_claim_name: "resourceClaimName" => ptr,
    resource_claim_template_name: "resourceClaimTemplateName" => ptr,
} }
k8s_json! { core::ResourceRequirements {
    limits: "limits" => map_omit,
    requests: "requests" => map_omit,
    claims: "claims" => list_omit,
} }
k8s_json! { core::WorkloadReference {
    name: "name" => req,
    pod_group: "podGroup" => req,
    pod_group_replica_key: "podGroupReplicaKey" => omit,
} }
k8s_json! { core::PodCondition {
    r#type: "type" => req,
    observed_generation: "observedGeneration" => omit,
    status: "status" => req,
    last_probe_time: "lastProbeTime" => req,
    last_transition_time: "lastTransitionTime" => req,
    reason: "reason" => omit,
    message: "message" => omit,
} }
k8s_json! { core::HostIp {
    ip: "ip" => req,
} }
k8s_json! { core::PodIp {
    ip: "ip" => req,
} }
k8s_json! { core::ContainerStatus {
    name: "name" => req,
    state: "state" => req,
    last_state: "lastState" => req,
    ready: "ready" => req,
    restart_count: "restartCount" => req,
    image: "image" => req,
    image_id: "imageID" => req,
    container_id: "containerID" => omit,
    started: "started" => ptr,
    allocated_resources: "allocatedResources" => map_omit,
    resources: "resources" => ptr,
    volume_mounts: "volumeMounts" => list_omit,
    user: "user" => ptr,
    allocated_resources_status: "allocatedResourcesStatus" => list_omit,
    stop_signal: "stopSignal" => ptr,
} }
k8s_json! { core::PodResourceClaimStatus {
    name: "name" => req,
    resource_claim_name: "resourceClaimName" => ptr,
} }
k8s_json! { core::PodExtendedResourceClaimStatus {
    request_mappings: "requestMappings" => list_req,
    resource_claim_name: "resourceClaimName" => req,
} }
k8s_json! { core::ServicePort {
    name: "name" => omit,
    protocol: "protocol" => omit,
    app_protocol: "appProtocol" => ptr,
    port: "port" => req,
    target_port: "targetPort" => req,
    node_port: "nodePort" => omit,
} }
k8s_json! { core::SessionAffinityConfig {
    client_ip: "clientIP" => ptr,
} }
k8s_json! { core::LoadBalancerStatus {
    ingress: "ingress" => list_omit,
} }
k8s_json! { meta::Condition {
    r#type: "type" => req,
    status: "status" => req,
    observed_generation: "observedGeneration" => omit,
    last_transition_time: "lastTransitionTime" => req,
    reason: "reason" => req,
    message: "message" => req,
} }
k8s_json! { core::EndpointAddress {
    ip: "ip" => req,
    hostname: "hostname" => omit,
    node_name: "nodeName" => ptr,
    target_ref: "targetRef" => ptr,
} }
k8s_json! { core::EndpointPort {
    name: "name" => omit,
    port: "port" => req,
    protocol: "protocol" => omit,
    app_protocol: "appProtocol" => ptr,
} }
k8s_json! { apiext::CustomResourceDefinitionNames {
    plural: "plural" => req,
    singular: "singular" => omit,
    short_names: "shortNames" => list_omit,
    kind: "kind" => req,
    list_kind: "listKind" => omit,
    categories: "categories" => list_omit,
} }
k8s_json! { apiext::CustomResourceDefinitionVersion {
    name: "name" => req,
    served: "served" => req,
    storage: "storage" => req,
    deprecated: "deprecated" => omit,
    deprecation_warning: "deprecationWarning" => ptr,
    schema: "schema" => ptr,
    subresources: "subresources" => ptr,
    additional_printer_columns: "additionalPrinterColumns" => list_omit,
    selectable_fields: "selectableFields" => list_omit,
} }
k8s_json! { apiext::CustomResourceConversion {
    strategy: "strategy" => req,
    webhook: "webhook" => ptr,
} }
k8s_json! { apiext::CustomResourceDefinitionCondition {
    r#type: "type" => req,
    status: "status" => req,
    last_transition_time: "lastTransitionTime" => req,
    reason: "reason" => omit,
    message: "message" => omit,
    observed_generation: "observedGeneration" => omit,
} }
k8s_json! { core::ConfigMapNodeConfigSource {
    namespace: "namespace" => req,
    name: "name" => req,
    uid: "uid" => omit,
    resource_version: "resourceVersion" => omit,
    kubelet_config_key: "kubeletConfigKey" => req,
} }
k8s_json! { core::DaemonEndpoint {
    port: "Port" => req,
} }
k8s_json! { core::NodeSwapStatus {
    capacity: "capacity" => ptr,
} }
k8s_json! { core::NodeRuntimeHandlerFeatures {
    recursive_read_only_mounts: "recursiveReadOnlyMounts" => ptr,
    user_namespaces: "userNamespaces" => ptr,
} }
k8s_json! { core::VolumeSource {
    host_path: "hostPath" => ptr,
    empty_dir: "emptyDir" => ptr,
    gce_persistent_disk: "gcePersistentDisk" => ptr,
    aws_elastic_block_store: "awsElasticBlockStore" => ptr,
    git_repo: "gitRepo" => ptr,
    secret: "secret" => ptr,
    nfs: "nfs" => ptr,
    iscsi: "iscsi" => ptr,
    glusterfs: "glusterfs" => ptr,
    persistent_volume_claim: "persistentVolumeClaim" => ptr,
    rbd: "rbd" => ptr,
    flex_volume: "flexVolume" => ptr,
    cinder: "cinder" => ptr,
    cephfs: "cephfs" => ptr,
    flocker: "flocker" => ptr,
    downward_api: "downwardAPI" => ptr,
    fc: "fc" => ptr,
    azure_file: "azureFile" => ptr,
    config_map: "configMap" => ptr,
    vsphere_volume: "vsphereVolume" => ptr,
    quobyte: "quobyte" => ptr,
    azure_disk: "azureDisk" => ptr,
    photon_persistent_disk: "photonPersistentDisk" => ptr,
    projected: "projected" => ptr,
    portworx_volume: "portworxVolume" => ptr,
    scale_io: "scaleIO" => ptr,
    storageos: "storageos" => ptr,
    csi: "csi" => ptr,
    ephemeral: "ephemeral" => ptr,
    image: "image" => ptr,
} }
k8s_json! { core::ContainerPort {
    name: "name" => omit,
    host_port: "hostPort" => omit,
    container_port: "containerPort" => req,
    protocol: "protocol" => omit,
    host_ip: "hostIP" => omit,
} }
k8s_json! { core::EnvFromSource {
    prefix: "prefix" => omit,
    config_map_ref: "configMapRef" => ptr,
    secret_ref: "secretRef" => ptr,
} }
k8s_json! { core::EnvVar {
    name: "name" => req,
    value: "value" => omit,
    value_from: "valueFrom" => ptr,
} }
k8s_json! { core::ContainerResizePolicy {
    resource_name: "resourceName" => req,
    restart_policy: "restartPolicy" => req,
} }
k8s_json! { core::ContainerRestartRule {
    action: "action" => omit,
    exit_codes: "exitCodes" => ptr,
} }
k8s_json! { core::VolumeMount {
    name: "name" => req,
    read_only: "readOnly" => omit,
    recursive_read_only: "recursiveReadOnly" => ptr,
    mount_path: "mountPath" => req,
    sub_path: "subPath" => omit,
    mount_propagation: "mountPropagation" => ptr,
    sub_path_expr: "subPathExpr" => omit,
} }
k8s_json! { core::VolumeDevice {
    name: "name" => req,
    device_path: "devicePath" => req,
} }
k8s_json! { core::Probe {
    handler: "ProbeHandler" => inline,
    initial_delay_seconds: "initialDelaySeconds" => omit,
    timeout_seconds: "timeoutSeconds" => omit,
    period_seconds: "periodSeconds" => omit,
    success_threshold: "successThreshold" => omit,
    failure_threshold: "failureThreshold" => omit,
    termination_grace_period_seconds: "terminationGracePeriodSeconds" => ptr,
} }
k8s_json! { core::Lifecycle {
    post_start: "postStart" => ptr,
    pre_stop: "preStop" => ptr,
    stop_signal: "stopSignal" => ptr,
} }
k8s_json! { core::SecurityContext {
    capabilities: "capabilities" => ptr,
    privileged: "privileged" => ptr,
    se_linux_options: "seLinuxOptions" => ptr,
    windows_options: "windowsOptions" => ptr,
    run_as_user: "runAsUser" => ptr,
    run_as_group: "runAsGroup" => ptr,
    run_as_non_root: "runAsNonRoot" => ptr,
    read_only_root_filesystem: "readOnlyRootFilesystem" => ptr,
    allow_privilege_escalation: "allowPrivilegeEscalation" => ptr,
    proc_mount: "procMount" => ptr,
    seccomp_profile: "seccompProfile" => ptr,
    app_armor_profile: "appArmorProfile" => ptr,
} }
k8s_json! { core::EphemeralContainerCommon {
    name: "name" => req,
    image: "image" => omit,
    command: "command" => list_omit,
    args: "args" => list_omit,
    working_dir: "workingDir" => omit,
    ports: "ports" => list_omit,
    env_from: "envFrom" => list_omit,
    env: "env" => list_omit,
    resources: "resources" => req,
    resize_policy: "resizePolicy" => list_omit,
    restart_policy: "restartPolicy" => ptr,
    restart_policy_rules: "restartPolicyRules" => list_omit,
    volume_mounts: "volumeMounts" => list_omit,
    volume_devices: "volumeDevices" => list_omit,
    liveness_probe: "livenessProbe" => ptr,
    readiness_probe: "readinessProbe" => ptr,
    startup_probe: "startupProbe" => ptr,
    lifecycle: "lifecycle" => ptr,
    termination_message_path: "terminationMessagePath" => omit,
    termination_message_policy: "terminationMessagePolicy" => omit,
    image_pull_policy: "imagePullPolicy" => omit,
    security_context: "securityContext" => ptr,
    stdin: "stdin" => omit,
    stdin_once: "stdinOnce" => omit,
    tty: "tty" => omit,
} }
k8s_json! { core::SeLinuxOptions {
    user: "user" => omit,
    role: "role" => omit,
    r#type: "type" => omit,
    level: "level" => omit,
} }
k8s_json! { core::WindowsSecurityContextOptions {
    gmsa_credential_spec_name: "gmsaCredentialSpecName" => ptr,
    gmsa_credential_spec: "gmsaCredentialSpec" => ptr,
    run_as_user_name: "runAsUserName" => ptr,
    host_process: "hostProcess" => ptr,
} }
k8s_json! { core::Sysctl {
    name: "name" => req,
    value: "value" => req,
} }
k8s_json! { core::SeccompProfile {
    r#type: "type" => req,
    localhost_profile: "localhostProfile" => ptr,
} }
k8s_json! { core::AppArmorProfile {
    r#type: "type" => req,
    localhost_profile: "localhostProfile" => ptr,
} }
k8s_json! { core::NodeAffinity {
    required_during_scheduling_ignored_during_execution:
        "requiredDuringSchedulingIgnoredDuringExecution" => ptr,
    preferred_during_scheduling_ignored_during_execution:
        "preferredDuringSchedulingIgnoredDuringExecution" => list_omit,
} }
k8s_json! { core::PodAffinity {
    required_during_scheduling_ignored_during_execution:
        "requiredDuringSchedulingIgnoredDuringExecution" => list_omit,
    preferred_during_scheduling_ignored_during_execution:
        "preferredDuringSchedulingIgnoredDuringExecution" => list_omit,
} }
k8s_json! { core::PodAntiAffinity {
    required_during_scheduling_ignored_during_execution:
        "requiredDuringSchedulingIgnoredDuringExecution" => list_omit,
    preferred_during_scheduling_ignored_during_execution:
        "preferredDuringSchedulingIgnoredDuringExecution" => list_omit,
} }
k8s_json! { core::PodDnsConfigOption {
    name: "name" => omit,
    value: "value" => ptr,
} }
k8s_json! { meta::LabelSelector {
    match_labels: "matchLabels" => map_omit,
    match_expressions: "matchExpressions" => list_omit,
} }
k8s_json! { core::ResourceClaim {
    name: "name" => req,
    request: "request" => omit,
} }
k8s_json! { core::ContainerState {
    waiting: "waiting" => ptr,
    running: "running" => ptr,
    terminated: "terminated" => ptr,
} }
k8s_json! { core::VolumeMountStatus {
    name: "name" => req,
    mount_path: "mountPath" => req,
    read_only: "readOnly" => omit,
    recursive_read_only: "recursiveReadOnly" => ptr,
} }
k8s_json! { core::ContainerUser {
    linux: "linux" => ptr,
} }
k8s_json! { core::ResourceStatus {
    name: "name" => req,
    resources: "resources" => list_omit,
} }
k8s_json! { core::ContainerExtendedResourceRequest {
    container_name: "containerName" => req,
    resource_name: "resourceName" => req,
    request_name: "requestName" => req,
} }
k8s_json! { core::ClientIpConfig {
    timeout_seconds: "timeoutSeconds" => ptr,
} }
k8s_json! { core::LoadBalancerIngress {
    ip: "ip" => omit,
    hostname: "hostname" => omit,
    ip_mode: "ipMode" => ptr,
    ports: "ports" => list_omit,
} }
k8s_json! { apiext::CustomResourceValidation {
    open_apiv3_schema: "openAPIV3Schema" => ptr,
} }
k8s_json! { apiext::CustomResourceSubresources {
    status: "status" => ptr,
    scale: "scale" => ptr,
} }
k8s_json! { apiext::CustomResourceColumnDefinition {
    name: "name" => req,
    r#type: "type" => req,
    format: "format" => omit,
    description: "description" => omit,
    priority: "priority" => omit,
    json_path: "jsonPath" => req,
} }
k8s_json! { apiext::SelectableField {
    json_path: "jsonPath" => req,
} }
k8s_json! { apiext::WebhookConversion {
    client_config: "clientConfig" => ptr,
    conversion_review_versions: "conversionReviewVersions" => list_req,
} }
k8s_json! { core::HostPathVolumeSource {
    path: "path" => req,
    r#type: "type" => ptr,
} }
k8s_json! { core::EmptyDirVolumeSource {
    medium: "medium" => omit,
    size_limit: "sizeLimit" => ptr,
} }
k8s_json! { core::GcePersistentDiskVolumeSource {
    pd_name: "pdName" => req,
    fs_type: "fsType" => omit,
    partition: "partition" => omit,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::AwsElasticBlockStoreVolumeSource {
    volume_id: "volumeID" => req,
    fs_type: "fsType" => omit,
    partition: "partition" => omit,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::GitRepoVolumeSource {
    repository: "repository" => req,
    revision: "revision" => omit,
    directory: "directory" => omit,
} }
k8s_json! { core::SecretVolumeSource {
    secret_name: "secretName" => omit,
    items: "items" => list_omit,
    default_mode: "defaultMode" => ptr,
    optional: "optional" => ptr,
} }
k8s_json! { core::NfsVolumeSource {
    server: "server" => req,
    path: "path" => req,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::IscsiVolumeSource {
    target_portal: "targetPortal" => req,
    iqn: "iqn" => req,
    lun: "lun" => req,
    iscsi_interface: "iscsiInterface" => omit,
    fs_type: "fsType" => omit,
    read_only: "readOnly" => omit,
    portals: "portals" => list_omit,
    chap_auth_discovery: "chapAuthDiscovery" => omit,
    chap_auth_session: "chapAuthSession" => omit,
    secret_ref: "secretRef" => ptr,
    initiator_name: "initiatorName" => ptr,
} }
k8s_json! { core::GlusterfsVolumeSource {
    endpoints: "endpoints" => req,
    path: "path" => req,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::PersistentVolumeClaimVolumeSource {
    claim_name: "claimName" => req,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::RbdVolumeSource {
    monitors: "monitors" => list_req,
    image: "image" => req,
    fs_type: "fsType" => omit,
    pool: "pool" => omit,
    user: "user" => omit,
    keyring: "keyring" => omit,
    secret_ref: "secretRef" => ptr,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::FlexVolumeSource {
    driver: "driver" => req,
    fs_type: "fsType" => omit,
    secret_ref: "secretRef" => ptr,
    read_only: "readOnly" => omit,
    options: "options" => map_omit,
} }
k8s_json! { core::CinderVolumeSource {
    volume_id: "volumeID" => req,
    fs_type: "fsType" => omit,
    read_only: "readOnly" => omit,
    secret_ref: "secretRef" => ptr,
} }
k8s_json! { core::CephFsVolumeSource {
    monitors: "monitors" => list_req,
    path: "path" => omit,
    user: "user" => omit,
    secret_file: "secretFile" => omit,
    secret_ref: "secretRef" => ptr,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::FlockerVolumeSource {
    dataset_name: "datasetName" => omit,
    dataset_uuid: "datasetUUID" => omit,
} }
k8s_json! { core::DownwardAPIVolumeSource {
    items: "items" => list_omit,
    default_mode: "defaultMode" => ptr,
} }
k8s_json! { core::FcVolumeSource {
    target_ww_ns: "targetWWNs" => list_omit,
    lun: "lun" => ptr,
    fs_type: "fsType" => omit,
    read_only: "readOnly" => omit,
    wwids: "wwids" => list_omit,
} }
k8s_json! { core::AzureFileVolumeSource {
    secret_name: "secretName" => req,
    share_name: "shareName" => req,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::ConfigMapVolumeSource {
    local_object_reference: "LocalObjectReference" => inline,
    items: "items" => list_omit,
    default_mode: "defaultMode" => ptr,
    optional: "optional" => ptr,
} }
k8s_json! { core::VsphereVirtualDiskVolumeSource {
    volume_path: "volumePath" => req,
    fs_type: "fsType" => omit,
    storage_policy_name: "storagePolicyName" => omit,
    storage_policy_id: "storagePolicyID" => omit,
} }
k8s_json! { core::QuobyteVolumeSource {
    registry: "registry" => req,
    volume: "volume" => req,
    read_only: "readOnly" => omit,
    user: "user" => omit,
    group: "group" => omit,
    tenant: "tenant" => omit,
} }
k8s_json! { core::AzureDiskVolumeSource {
    disk_name: "diskName" => req,
    disk_uri: "diskURI" => req,
    caching_mode: "cachingMode" => ptr,
    fs_type: "fsType" => ptr,
    read_only: "readOnly" => ptr,
    kind: "kind" => ptr,
} }
k8s_json! { core::PhotonPersistentDiskVolumeSource {
    pd_id: "pdID" => req,
    fs_type: "fsType" => omit,
} }
k8s_json! { core::ProjectedVolumeSource {
    sources: "sources" => list_req,
    default_mode: "defaultMode" => ptr,
} }
k8s_json! { core::PortworxVolumeSource {
    volume_id: "volumeID" => req,
    fs_type: "fsType" => omit,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::ScaleIoVolumeSource {
    gateway: "gateway" => req,
    system: "system" => req,
    secret_ref: "secretRef" => ptr_null,
    ssl_enabled: "sslEnabled" => omit,
    protection_domain: "protectionDomain" => omit,
    storage_pool: "storagePool" => omit,
    storage_mode: "storageMode" => omit,
    volume_name: "volumeName" => omit,
    fs_type: "fsType" => omit,
    read_only: "readOnly" => omit,
} }
k8s_json! { core::StorageOsVolumeSource {
    volume_name: "volumeName" => omit,
    volume_namespace: "volumeNamespace" => omit,
    fs_type: "fsType" => omit,
    read_only: "readOnly" => omit,
    secret_ref: "secretRef" => ptr,
} }
k8s_json! { core::CSIVolumeSource {
    driver: "driver" => req,
    read_only: "readOnly" => ptr,
    fs_type: "fsType" => ptr,
    volume_attributes: "volumeAttributes" => map_omit,
    node_publish_secret_ref: "nodePublishSecretRef" => ptr,
} }
k8s_json! { core::EphemeralVolumeSource {
    volume_claim_template: "volumeClaimTemplate" => ptr,
} }
k8s_json! { core::ImageVolumeSource {
    reference: "reference" => omit,
    pull_policy: "pullPolicy" => omit,
} }
k8s_json! { core::ConfigMapEnvSource {
    local_object_reference: "LocalObjectReference" => inline,
    optional: "optional" => ptr,
} }
k8s_json! { core::SecretEnvSource {
    local_object_reference: "LocalObjectReference" => inline,
    optional: "optional" => ptr,
} }
k8s_json! { core::EnvVarSource {
    field_ref: "fieldRef" => ptr,
    resource_field_ref: "resourceFieldRef" => ptr,
    config_map_key_ref: "configMapKeyRef" => ptr,
    secret_key_ref: "secretKeyRef" => ptr,
    file_key_ref: "fileKeyRef" => ptr,
} }
k8s_json! { core::ContainerRestartRuleOnExitCodes {
    operator: "operator" => omit,
    values: "values" => list_omit,
} }
k8s_json! { core::ProbeHandler {
    exec: "exec" => ptr,
    http_get: "httpGet" => ptr,
    tcp_socket: "tcpSocket" => ptr,
    grpc: "grpc" => ptr,
} }
k8s_json! { core::LifecycleHandler {
    exec: "exec" => ptr,
    http_get: "httpGet" => ptr,
    tcp_socket: "tcpSocket" => ptr,
    sleep: "sleep" => ptr,
} }
k8s_json! { core::Capabilities {
    add: "add" => list_omit,
    drop: "drop" => list_omit,
} }
k8s_json! { core::NodeSelector {
    node_selector_terms: "nodeSelectorTerms" => list_req,
} }
k8s_json! { core::PreferredSchedulingTerm {
    weight: "weight" => req,
    preference: "preference" => req,
} }
k8s_json! { core::PodAffinityTerm {
    label_selector: "labelSelector" => ptr,
    namespaces: "namespaces" => list_omit,
    topology_key: "topologyKey" => req,
    namespace_selector: "namespaceSelector" => ptr,
    match_label_keys: "matchLabelKeys" => list_omit,
    mismatch_label_keys: "mismatchLabelKeys" => list_omit,
} }
k8s_json! { core::WeightedPodAffinityTerm {
    weight: "weight" => req,
    pod_affinity_term: "podAffinityTerm" => req,
} }
k8s_json! { meta::LabelSelectorRequirement {
    key: "key" => req,
    operator: "operator" => req,
    values: "values" => list_omit,
} }
k8s_json! { core::ContainerStateWaiting {
    reason: "reason" => omit,
    message: "message" => omit,
} }
k8s_json! { core::ContainerStateRunning {
    started_at: "startedAt" => req,
} }
k8s_json! { core::ContainerStateTerminated {
    exit_code: "exitCode" => req,
    signal: "signal" => omit,
    reason: "reason" => omit,
    message: "message" => omit,
    started_at: "startedAt" => req,
    finished_at: "finishedAt" => req,
    container_id: "containerID" => omit,
} }
k8s_json! { core::LinuxContainerUser {
    uid: "uid" => req,
    gid: "gid" => req,
    supplemental_groups: "supplementalGroups" => list_omit,
} }
k8s_json! { core::ResourceHealth {
    resource_id: "resourceID" => req,
    health: "health" => omit,
} }
k8s_json! { core::PortStatus {
    port: "port" => req,
    protocol: "protocol" => req,
    error: "error" => ptr,
} }
k8s_json! { apiext::JsonSchemaProps {
    id: "id" => omit,
    schema: "$schema" => omit,
    r#ref: "$ref" => ptr,
    description: "description" => omit,
    r#type: "type" => omit,
    format: "format" => omit,
    title: "title" => omit,
    default: "default" => ptr,
    maximum: "maximum" => ptr,
    exclusive_maximum: "exclusiveMaximum" => omit,
    minimum: "minimum" => ptr,
    exclusive_minimum: "exclusiveMinimum" => omit,
    max_length: "maxLength" => ptr,
    min_length: "minLength" => ptr,
    pattern: "pattern" => omit,
    max_items: "maxItems" => ptr,
    min_items: "minItems" => ptr,
    unique_items: "uniqueItems" => omit,
    multiple_of: "multipleOf" => ptr,
    r#enum: "enum" => list_omit,
    max_properties: "maxProperties" => ptr,
    min_properties: "minProperties" => ptr,
    required: "required" => list_omit,
    items: "items" => ptr,
    all_of: "allOf" => list_omit,
    one_of: "oneOf" => list_omit,
    any_of: "anyOf" => list_omit,
    not: "not" => ptr,
    properties: "properties" => map_omit,
    additional_properties: "additionalProperties" => ptr,
    pattern_properties: "patternProperties" => map_omit,
    dependencies: "dependencies" => map_omit,
    additional_items: "additionalItems" => ptr,
    definitions: "definitions" => map_omit,
    external_docs: "externalDocs" => ptr,
    example: "example" => ptr,
    nullable: "nullable" => omit,
    x_kubernetes_preserve_unknown_fields: "x-kubernetes-preserve-unknown-fields" => ptr,
    x_kubernetes_embedded_resource: "x-kubernetes-embedded-resource" => omit,
    x_kubernetes_int_or_string: "x-kubernetes-int-or-string" => omit,
    x_kubernetes_list_map_keys: "x-kubernetes-list-map-keys" => list_omit,
    x_kubernetes_list_type: "x-kubernetes-list-type" => ptr,
    x_kubernetes_map_type: "x-kubernetes-map-type" => ptr,
    x_kubernetes_validations: "x-kubernetes-validations" => list_omit,
} }
k8s_json! { apiext::CustomResourceSubresourceStatus {
} }
k8s_json! { apiext::CustomResourceSubresourceScale {
    spec_replicas_path: "specReplicasPath" => req,
    status_replicas_path: "statusReplicasPath" => req,
    label_selector_path: "labelSelectorPath" => ptr,
} }
k8s_json! { apiext::WebhookClientConfig {
    url: "url" => ptr,
    service: "service" => ptr,
    ca_bundle: "caBundle" => omit,
} }
k8s_json! { core::KeyToPath {
    key: "key" => req,
    path: "path" => req,
    mode: "mode" => ptr,
} }
k8s_json! { core::DownwardAPIVolumeFile {
    path: "path" => req,
    field_ref: "fieldRef" => ptr,
    resource_field_ref: "resourceFieldRef" => ptr,
    mode: "mode" => ptr,
} }
k8s_json! { core::VolumeProjection {
    secret: "secret" => ptr,
    downward_api: "downwardAPI" => ptr,
    config_map: "configMap" => ptr,
    service_account_token: "serviceAccountToken" => ptr,
    cluster_trust_bundle: "clusterTrustBundle" => ptr,
    pod_certificate: "podCertificate" => ptr,
} }
k8s_json! { core::PersistentVolumeClaimTemplate {
    metadata: "metadata" => req,
    spec: "spec" => req,
} }
k8s_json! { core::ObjectFieldSelector {
    api_version: "apiVersion" => omit,
    field_path: "fieldPath" => req,
} }
k8s_json! { core::ResourceFieldSelector {
    container_name: "containerName" => omit,
    resource: "resource" => req,
    divisor: "divisor" => req,
} }
k8s_json! { core::ConfigMapKeySelector {
    local_object_reference: "LocalObjectReference" => inline,
    key: "key" => req,
    optional: "optional" => ptr,
} }
k8s_json! { core::SecretKeySelector {
    local_object_reference: "LocalObjectReference" => inline,
    key: "key" => req,
    optional: "optional" => ptr,
} }
k8s_json! { core::FileKeySelector {
    volume_name: "volumeName" => req,
    path: "path" => req,
    key: "key" => req,
    optional: "optional" => ptr,
} }
k8s_json! { core::ExecAction {
    command: "command" => list_omit,
} }
k8s_json! { core::HttpGetAction {
    path: "path" => omit,
    port: "port" => req,
    host: "host" => omit,
    scheme: "scheme" => omit,
    http_headers: "httpHeaders" => list_omit,
} }
k8s_json! { core::TcpSocketAction {
    port: "port" => req,
    host: "host" => omit,
} }
k8s_json! { core::GrpcAction {
    port: "port" => req,
    service: "service" => ptr_null,
} }
k8s_json! { core::SleepAction {
    seconds: "seconds" => req,
} }
k8s_json! { core::NodeSelectorTerm {
    match_expressions: "matchExpressions" => list_omit,
    match_fields: "matchFields" => list_omit,
} }
k8s_json! { apiext::ExternalDocumentation {
    description: "description" => omit,
    url: "url" => omit,
} }
k8s_json! { apiext::ValidationRule {
    rule: "rule" => req,
    message: "message" => omit,
    message_expression: "messageExpression" => omit,
    reason: "reason" => ptr,
    field_path: "fieldPath" => omit,
    optional_old_self: "optionalOldSelf" => ptr,
} }
k8s_json! { apiext::ServiceReference {
    namespace: "namespace" => req,
    name: "name" => req,
    path: "path" => ptr,
    port: "port" => ptr,
} }
k8s_json! { core::SecretProjection {
    local_object_reference: "LocalObjectReference" => inline,
    items: "items" => list_omit,
    optional: "optional" => ptr,
} }
k8s_json! { core::DownwardAPIProjection {
    items: "items" => list_omit,
} }
k8s_json! { core::ConfigMapProjection {
    local_object_reference: "LocalObjectReference" => inline,
    items: "items" => list_omit,
    optional: "optional" => ptr,
} }
k8s_json! { core::ServiceAccountTokenProjection {
    audience: "audience" => omit,
    expiration_seconds: "expirationSeconds" => ptr,
    path: "path" => req,
} }
k8s_json! { core::ClusterTrustBundleProjection {
    name: "name" => ptr,
    signer_name: "signerName" => ptr,
    label_selector: "labelSelector" => ptr,
    optional: "optional" => ptr,
    path: "path" => req,
} }
k8s_json! { core::PodCertificateProjection {
    signer_name: "signerName" => omit,
    key_type: "keyType" => omit,
    max_expiration_seconds: "maxExpirationSeconds" => ptr,
    credential_bundle_path: "credentialBundlePath" => omit,
    key_path: "keyPath" => omit,
    certificate_chain_path: "certificateChainPath" => omit,
    user_annotations: "userAnnotations" => map_omit,
} }
k8s_json! { core::PersistentVolumeClaimSpec {
    access_modes: "accessModes" => list_omit,
    selector: "selector" => ptr,
    resources: "resources" => req,
    volume_name: "volumeName" => omit,
    storage_class_name: "storageClassName" => ptr,
    volume_mode: "volumeMode" => ptr,
    data_source: "dataSource" => ptr,
    data_source_ref: "dataSourceRef" => ptr,
    volume_attributes_class_name: "volumeAttributesClassName" => ptr,
} }
k8s_json! { core::HttpHeader {
    name: "name" => req,
    value: "value" => req,
} }
k8s_json! { core::NodeSelectorRequirement {
    key: "key" => req,
    operator: "operator" => req,
    values: "values" => list_omit,
} }
k8s_json! { core::VolumeResourceRequirements {
    limits: "limits" => map_omit,
    requests: "requests" => map_omit,
} }
k8s_json! { core::TypedLocalObjectReference {
    api_group: "apiGroup" => ptr_null,
    kind: "kind" => req,
    name: "name" => req,
} }
k8s_json! { core::TypedObjectReference {
    api_group: "apiGroup" => ptr_null,
    kind: "kind" => req,
    name: "name" => req,
    namespace: "namespace" => ptr,
} }
