#!/usr/bin/env bash
# Measures edgecore's footprint (issue #3) and writes reports/edgecore/footprint.{json,md}:
# edgecore RSS idle and with 10 running pods (process runtime), pod create → process started
# latency, stripped binary sizes, cloudcore RSS with two nodes for context.
# Needs kubectl, strip, python3 and pgrep on PATH; Linux (/proc).
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -p cloudcore -p edgecore -p keadm
BIN=$TARGET/release
D=$(mktemp -d /tmp/edgefleet-measure.XXXXXX)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
WS=$(free_port) CERT=$(free_port) API=$(free_port) MET=$(free_port)
cleanup() {
  for n in edge-1 edge-2 cloud; do "$BIN/keadm" reset --data-dir "$D/$n" >/dev/null 2>&1 || true; done
  # edgecore stops its pods on SIGTERM; kill any that survived by the pids they recorded.
  for f in "$D"/pods/*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$D"
}
trap cleanup EXIT
"$BIN/keadm" init --advertise-address 127.0.0.1 --data-dir "$D/cloud" --websocket-port "$WS" \
  --cert-port "$CERT" --apiserver-port "$API" --metrics-port "$MET" >/dev/null
TOKEN=$("$BIN/keadm" gettoken --data-dir "$D/cloud")
for n in edge-1 edge-2; do
  "$BIN/keadm" join --cloudcore-ipport "127.0.0.1:$WS" --certport "$CERT" --token "$TOKEN" \
    --edgenode-name "$n" --data-dir "$D/$n" >/dev/null
done
export KUBECONFIG=$D/cloud/apiserver/kubeconfig HOME=$D
EPID=$(cat "$D/edge-1/edgecore.pid"); CPID=$(cat "$D/cloud/cloudcore.pid")
kib() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
pss() { awk '$1=="Pss:" {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# Warm kubectl's discovery cache (HOME is fresh) so the first pod's latency is not kubectl's.
kubectl get nodes >/dev/null
sleep 5
IDLE_RSS=$(kib "$EPID" VmRSS); IDLE_HWM=$(kib "$EPID" VmHWM); IDLE_PSS=$(pss "$EPID")
IDLE_ANON=$(kib "$EPID" RssAnon); IDLE_FILE=$(kib "$EPID" RssFile)
mkdir -p "$D/pods"
APPLY=()
for i in $(seq 1 10); do
  # `$$$$` is `$$` after Kubernetes' `$(VAR)` escaping.
  cat >"$D/p$i.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: p$i}
spec:
  nodeName: edge-1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'date +%s%N > $D/pods/p$i.started; echo \$\$\$\$ > $D/pods/p$i.pid; exec sleep 3600']
YAML
  t0=$(date +%s%N); echo "$t0" >"$D/pods/p$i.submitted"
  kubectl apply -f "$D/p$i.yaml" >/dev/null
  APPLY+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
ready() {
  kubectl get pods -o jsonpath='{range .items[*]}{.status.phase} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
    2>/dev/null | grep -c '^Running True$' || true
}
n=0
for _ in $(seq 300); do n=$(ready); [ "$n" -eq 10 ] && break; sleep 0.2; done
[ "$n" -eq 10 ] || { echo "only $n of 10 pods Running and Ready" >&2; kubectl get pods -o wide >&2; exit 1; }
LAT=()
for i in $(seq 1 10); do
  LAT+=($(( ($(cat "$D/pods/p$i.started") - $(cat "$D/pods/p$i.submitted")) / 1000000 )))
done
MAX_RSS=0 SAMPLES=()
for _ in $(seq 20); do
  r=$(kib "$EPID" VmRSS); SAMPLES+=("$r"); [ "$r" -gt "$MAX_RSS" ] && MAX_RSS=$r; sleep 1
done
RSS=$(kib "$EPID" VmRSS); HWM=$(kib "$EPID" VmHWM); PSS=$(pss "$EPID")
ANON=$(kib "$EPID" RssAnon); FILE=$(kib "$EPID" RssFile); THREADS=$(kib "$EPID" Threads)
E2PID=$(cat "$D/edge-2/edgecore.pid"); E2RSS=$(kib "$E2PID" VmRSS)
CHILD_RSS=0 CHILDREN=0
for c in $(pgrep -P "$EPID" || true); do
  CHILD_RSS=$((CHILD_RSS + $(kib "$c" VmRSS))); CHILDREN=$((CHILDREN + 1))
done
# edgecore's resident memory by mapping (the binary's own pages, libc, heap, anonymous).
BY_MAP=$(python3 - "$EPID" <<'PY'
import collections, json, sys
rss, name = collections.Counter(), None
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    f = line.split()
    if "-" in f[0] and not f[0].endswith(":"):
        name = f[5].rsplit("/", 1)[-1] if len(f) > 5 else "[anon]"
    elif f[0] == "Rss:":
        rss[name] += int(f[1])
print(json.dumps(dict(rss.most_common(8))))
PY
)
CLOUD_RSS=$(kib "$CPID" VmRSS); CLOUD_HWM=$(kib "$CPID" VmHWM); CLOUD_THREADS=$(kib "$CPID" Threads)
# Latency without kubectl: POST each pod straight to the API server over one kept-alive TLS
# connection, for edge-2 (no pods yet, so edge-1's figures above are unaffected).
SERVER=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$D/ca.pem"
ADMIN_TOKEN=$(kubectl config view --raw -o jsonpath='{.users[0].user.token}')
DIRECT=$(python3 - "$SERVER" "$D/ca.pem" "$ADMIN_TOKEN" "$D/pods" <<'PY'
import http.client, json, os, ssl, sys, time, urllib.parse
server, ca, token, pods = sys.argv[1:]
u = urllib.parse.urlsplit(server)
conn = http.client.HTTPSConnection(u.hostname, u.port, context=ssl.create_default_context(cafile=ca))
hdr = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
conn.request("GET", "/api/v1/namespaces/default/pods", headers=hdr); conn.getresponse().read()
lat, api = [], []
for i in range(1, 11):
    started = f"{pods}/q{i}.started"
    cmd = f"date +%s%N > {started}; echo $$$$ > {pods}/q{i}.pid; exec sleep 3600"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"q{i}"},
           "spec": {"nodeName": "edge-2", "containers": [{"name": "c", "image": "busybox",
                    "command": ["sh", "-c", cmd]}]}}
    body = json.dumps(pod)
    t0 = time.time_ns()
    conn.request("POST", "/api/v1/namespaces/default/pods", body=body, headers=hdr)
    r = conn.getresponse(); r.read()
    t1 = time.time_ns()
    assert r.status == 201, r.status
    deadline = time.time() + 20
    while not (os.path.exists(started) and os.path.getsize(started) > 0):
        assert time.time() < deadline, f"q{i} did not start"
        time.sleep(0.001)
    lat.append(round((int(open(started).read()) - t0) / 1e6, 1))
    api.append(round((t1 - t0) / 1e6, 1))
print(json.dumps({"create_to_started_ms": lat, "api_post_ms": api}))
PY
)
size() { stat -c %s "$1"; }
strip_size() { cp "$1" "$D/s"; strip "$D/s"; stat -c %s "$D/s"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
P50=$(median "${LAT[@]}"); PMAX=$(printf '%s\n' "${LAT[@]}" | sort -n | tail -1)
PMIN=$(printf '%s\n' "${LAT[@]}" | sort -n | head -1); APPLY50=$(median "${APPLY[@]}")
join() { local IFS=,; echo "$*"; }
mkdir -p reports/edgecore
cat >reports/edgecore/footprint.json <<JSON
{
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$(git rev-parse --short HEAD)",
  "kernel": "$(uname -r)", "nproc": $(nproc), "build": "release (profile.release debug = 1)",
  "units": "*_kib: KiB from /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile) or smaps_rollup (Pss); *_ms: milliseconds; *_bytes: bytes",
  "edgecore_idle": {"rss_kib": $IDLE_RSS, "hwm_kib": $IDLE_HWM, "pss_kib": $IDLE_PSS, "rss_anon_kib": $IDLE_ANON, "rss_file_kib": $IDLE_FILE},
  "edgecore_10_pods": {"rss_kib": $RSS, "rss_max_kib": $MAX_RSS, "rss_samples_kib": [$(join "${SAMPLES[@]}")],
    "hwm_kib": $HWM, "pss_kib": $PSS, "rss_anon_kib": $ANON, "rss_file_kib": $FILE, "threads": $THREADS},
  "edgecore_edge2_no_pods_rss_kib": $E2RSS,
  "pod_processes": {"count": $CHILDREN, "rss_total_kib": $CHILD_RSS},
  "cloudcore_2_nodes_10_pods": {"rss_kib": $CLOUD_RSS, "hwm_kib": $CLOUD_HWM, "threads": $CLOUD_THREADS},
  "pod_create_to_started_ms": [$(join "${LAT[@]}")],
  "pod_create_to_started_p50_ms": $P50, "pod_create_to_started_min_ms": $PMIN, "pod_create_to_started_max_ms": $PMAX,
  "kubectl_apply_ms": [$(join "${APPLY[@]}")], "kubectl_apply_p50_ms": $APPLY50,
  "direct_api_edge2": $DIRECT,
  "edgecore_10_pods_rss_by_mapping_kib": $BY_MAP,
  "binary_bytes": {"cloudcore": $(size "$BIN/cloudcore"), "edgecore": $(size "$BIN/edgecore"), "keadm": $(size "$BIN/keadm")},
  "stripped_bytes": {"cloudcore": $(strip_size "$BIN/cloudcore"), "edgecore": $(strip_size "$BIN/edgecore"), "keadm": $(strip_size "$BIN/keadm")}
}
JSON
python3 - <<'PY'
import json
j = json.load(open("reports/edgecore/footprint.json"))
i, p, c = j["edgecore_idle"], j["edgecore_10_pods"], j["cloudcore_2_nodes_10_pods"]
m = lambda kib: f"{kib / 1024:.1f}"
s, b = j["stripped_bytes"], j["binary_bytes"]
d = j["direct_api_edge2"]
med = lambda xs: sorted(xs)[len(xs) // 2 - 1] / 2 + sorted(xs)[len(xs) // 2] / 2
maps = ", ".join(f"{k} {v / 1024:.1f}" for k, v in j["edgecore_10_pods_rss_by_mapping_kib"].items())
bin_row = lambda n: f"| {n} binary, stripped (unstripped) | {s[n] / 2**20:.1f} MiB ({b[n] / 2**20:.1f} MiB) | — |"
out = f"""# edgecore footprint

Measured by `bash ci/measure-edge.sh` on {j['date']} (commit {j['commit']}, {j['nproc']} vCPU,
kernel {j['kernel']}, release build): `keadm init`, edge-1 and edge-2 joined, then 10 pods for
edge-1 applied one by one with kubectl, run by the process runtime (each pod: `sh -c` writes a
timestamp, then `exec sleep 3600`).

| figure | edgefleet | goal / KubeEdge |
|---|---|---|
| **edgecore RSS, 10 running pods** (last / max of 20 samples over 20 s) | **{m(p['rss_kib'])} / {m(p['rss_max_kib'])} MiB** ({p['rss_max_kib'] * 1024 / 1e6:.1f} MB) | goal ≤ 15 MB; KubeEdge edgecore 94 MiB measured here, ~70 MB in its own report |
| of which anonymous / file-backed | {m(p['rss_anon_kib'])} / {m(p['rss_file_kib'])} MiB | — |
| edgecore PSS, 10 pods | {m(p['pss_kib'])} MiB | — |
| edgecore peak RSS since start (VmHWM) | {m(p['hwm_kib'])} MiB | — |
| edgecore RSS / VmHWM / PSS, idle (registered, connected, no pods) | {m(i['rss_kib'])} / {m(i['hwm_kib'])} / {m(i['pss_kib'])} MiB | — |
| edgecore threads | {p['threads']} | — |
| the {j['pod_processes']['count']} pod processes (the workload, not edgecore) | {m(j['pod_processes']['rss_total_kib'])} MiB in total | — |
| pod create → process started, p50 / min / max of 10 | {j['pod_create_to_started_p50_ms']} / {j['pod_create_to_started_min_ms']} / {j['pod_create_to_started_max_ms']} ms | KubeEdge 100k-node test: pod startup p50 1,688 ms, p99 4,087 ms (different setup) |
| of which `kubectl apply` itself (submit → kubectl exits), p50 | {j['kubectl_apply_p50_ms']} ms | — |
| pod create → process started without kubectl (HTTP POST on a kept-alive connection, edge-2), p50 / min / max of 10 | {med(d['create_to_started_ms']):.1f} / {min(d['create_to_started_ms'])} / {max(d['create_to_started_ms'])} ms | — |
| of which the API POST (request → 201), p50 | {med(d['api_post_ms']):.1f} ms | — |
| cloudcore RSS (embedded API server, 2 nodes, 10 pods) | {m(c['rss_kib'])} MiB (VmHWM {m(c['hwm_kib'])}) | — |
{bin_row('edgecore')}
{bin_row('cloudcore')}
{bin_row('keadm')}

Pod create → started per pod (ms): {j['pod_create_to_started_ms']}; `kubectl apply` per pod
(ms): {j['kubectl_apply_ms']}; without kubectl (ms): {d['create_to_started_ms']}.
edgecore RSS by mapping with 10 pods (MiB): {maps}.

**Method.** RSS, VmHWM, RssAnon and RssFile come from `/proc/PID/status`, PSS from
`/proc/PID/smaps_rollup`, all for the edgecore process alone; the pods are its child
processes and are reported separately. Latency runs from a nanosecond timestamp taken just
before `kubectl apply` to the `date +%s%N` the pod's shell writes as its first command: it
includes the kubectl process (start, TLS, request), the API write, the watch event, CloudHub,
the websocket, the edge's SQLite commit, edged's sync and the fork/exec of `sh` and `date`.
kubectl's discovery cache is warmed first so the first pod does not pay for discovery.
The pod usually starts before `kubectl apply` has exited, so the kubectl figure is mostly
kubectl; the second series takes kubectl out: a Python client POSTs each pod (for edge-2,
after edge-1's figures are taken) on one kept-alive TLS connection and waits for it to start
before the next.

**Where edgecore's RSS goes.** {m(p['rss_file_kib'])} of the {m(p['rss_kib'])} MiB are
file-backed: clean pages of the edgecore binary (mostly its ~6 MiB `.text`) and libc, shared
with the page cache and reclaimable under pressure. Only {m(p['rss_anon_kib'])} MiB are
anonymous (heap, the main thread's stack, relocated data); 10 pods add
{(p['rss_kib'] - i['rss_kib']) / 1024:.1f} MiB over idle.

**Caveats.** One run on a shared {j['nproc']}-vCPU VM, loopback only: expect ±20 % between runs.
The process runtime has no images, so there is no pull and no container setup, unlike KubeEdge's
CRI path; the latency comparison with KubeEdge's published figure is indicative only.
Both edgecores run the same binary, so its file-backed pages are shared and PSS is lower than
it would be with a single edge; RSS is the figure to compare with the goal.
The unstripped sizes include debug info (`debug = 1` in `profile.release`); stripped is the
shipping size. Goal is in MB (10^6 bytes); figures are MiB unless marked.
"""
open("reports/edgecore/footprint.md", "w").write(out)
PY
cat reports/edgecore/footprint.md
