#!/usr/bin/env bash
# The main job (README), until the fleet simulator lands (#4): builds the daemons, sets up
# cloudcore (embedded API server) and two edge nodes with keadm on this machine, runs a pod
# on edge-1 with kubectl, shows it running as a process, then tears everything down.
#   PROFILE=debug|release (default release)   DATA_DIR=<tmp>
#   ports: WS_PORT=10000 CERT_PORT=10002 API_PORT=6443 METRICS_PORT=9091 TUNNEL_PORT=10004
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS
PROFILE=${PROFILE:-release}
DATA_DIR=${DATA_DIR:-$(mktemp -d /tmp/edgefleet-demo.XXXXXX)}
WS_PORT=${WS_PORT:-10000} CERT_PORT=${CERT_PORT:-10002}
API_PORT=${API_PORT:-6443} METRICS_PORT=${METRICS_PORT:-9091}
TUNNEL_PORT=${TUNNEL_PORT:-10004}
TARGET=${CARGO_TARGET_DIR:-target}
FLAGS=(--locked -p cloudcore -p edgecore -p keadm)
if [ "$PROFILE" = release ]; then cargo build --release "${FLAGS[@]}"; BIN=$TARGET/release
else cargo build "${FLAGS[@]}"; BIN=$TARGET/debug; fi
KEADM=$BIN/keadm
cleanup() {
  for d in edge-1 edge-2 cloud; do "$KEADM" reset --data-dir "$DATA_DIR/$d" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
step() { echo; echo "\$ $*"; "$@"; }

step "$KEADM" init --advertise-address 127.0.0.1 --data-dir "$DATA_DIR/cloud" \
  --websocket-port "$WS_PORT" --cert-port "$CERT_PORT" --apiserver-port "$API_PORT" \
  --metrics-port "$METRICS_PORT" --tunnel-port "$TUNNEL_PORT"
TOKEN=$("$KEADM" gettoken --data-dir "$DATA_DIR/cloud")
for n in edge-1 edge-2; do
  step "$KEADM" join --cloudcore-ipport "127.0.0.1:$WS_PORT" --certport "$CERT_PORT" \
    --token "$TOKEN" --edgenode-name "$n" --data-dir "$DATA_DIR/$n" --tunnel-port "$TUNNEL_PORT"
done
export KUBECONFIG="$DATA_DIR/cloud/apiserver/kubeconfig" HOME="$DATA_DIR"
step kubectl get nodes -o wide
cat >"$DATA_DIR/app.yaml" <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: greeting}
data: {text: "hello from the cloud"}
---
apiVersion: v1
kind: Pod
metadata: {name: hello, labels: {app: hello}}
spec:
  nodeName: edge-1
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'echo "\$(TEXT)" | tee $DATA_DIR/hello.out; exec sleep 3600']
    env:
    - name: TEXT
      valueFrom: {configMapKeyRef: {name: greeting, key: text}}
YAML
step kubectl apply -f "$DATA_DIR/app.yaml"
for _ in $(seq 100); do
  [ "$(kubectl get pod hello -o jsonpath='{.status.phase}')" = Running ] && break; sleep 0.2
done
step kubectl get pods -o wide
echo; echo "\$ cat $DATA_DIR/hello.out   # written by the pod's process on edge-1"
cat "$DATA_DIR/hello.out"
step kubectl logs hello                  # through CloudStream and edge-1's EdgeStream tunnel
step kubectl exec hello -- echo hi from edge-1
step kubectl get leases -n kube-node-lease
echo; echo "\$ keadm debug check --data-dir $DATA_DIR/cloud"
"$KEADM" debug check --data-dir "$DATA_DIR/cloud" | tail -n 3
step kubectl delete pod hello
cleanup
trap - EXIT
echo; echo "demo finished; everything stopped and removed"
