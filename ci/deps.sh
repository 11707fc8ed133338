#!/usr/bin/env bash
# Installs what the tests need when it is absent. Debian packages only (apt-get).
# kubectl 1.32 is part of the machine image; it cannot be installed from Debian, so its
# absence is reported, not hidden: the tests that need it fail with a message saying so.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v python3 >/dev/null || need+=(python3)
# The device tests (issue #6): a real MQTT broker and its command-line clients.
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
# edged's CRI runtime tests (issue #7): a real containerd (with ctr and the runc shim), runc,
# and busybox-static, from which the tests build their local images (no registry is reached).
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "ci/deps.sh: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
if ! command -v kubectl >/dev/null; then
  echo "ci/deps.sh: WARNING: kubectl (1.32) is not on PATH; the kubectl acceptance tests will fail" >&2
fi
