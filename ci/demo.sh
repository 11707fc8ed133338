#!/usr/bin/env bash
# The main job (README), until the fleet simulator lands: builds and starts the embedded
# API server on a fresh data directory, then drives it with the real kubectl.
#   PROFILE=debug|release (default release)   LISTEN=127.0.0.1:6443   DATA_DIR=<tmp>
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS
PROFILE=${PROFILE:-release}
LISTEN=${LISTEN:-127.0.0.1:6443}
DATA_DIR=${DATA_DIR:-$(mktemp -d /tmp/edgefleet-demo.XXXXXX)}
TARGET=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then cargo build --release -p apiserver --locked; BIN=$TARGET/release/apiserver
else cargo build -p apiserver --locked; BIN=$TARGET/debug/apiserver; fi

"$BIN" --data-dir "$DATA_DIR" --listen "$LISTEN" 2>"$DATA_DIR/apiserver.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
export KUBECONFIG="$DATA_DIR/kubeconfig" HOME="$DATA_DIR"
for _ in $(seq 100); do
  [ -f "$KUBECONFIG" ] && kubectl get --raw /healthz >/dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || { cat "$DATA_DIR/apiserver.log"; exit 1; }
  sleep 0.2
done
step() { echo; echo "\$ $*"; "$@"; }
step kubectl version
step kubectl create namespace demo
cat >"$DATA_DIR/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: demo, labels: {app: web}}
spec:
  nodeName: edge-1
  containers:
  - {name: app, image: "busybox:1.36", command: ["sleep", "3600"]}
YAML
step kubectl apply -f "$DATA_DIR/pod.yaml"
sed -i 's/busybox:1.36/busybox:1.37/' "$DATA_DIR/pod.yaml"
step kubectl apply -f "$DATA_DIR/pod.yaml"
step kubectl get pods -n demo -o wide
step kubectl get pods -A --field-selector spec.nodeName=edge-1 -o jsonpath='{.items[*].spec.containers[0].image}{"\n"}'
step kubectl get namespaces
step kubectl api-resources
kill -TERM $PID; wait $PID && echo && echo "apiserver stopped cleanly; data in $DATA_DIR"
trap - EXIT
