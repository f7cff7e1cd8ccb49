#!/usr/bin/env bash
# Tools the deploy-pack tests need, installed if missing (safe to run any number of times):
#   - Debian's `prometheus` package: /usr/bin/prometheus (scrapes a daemon in tests/prometheus.rs)
#     and /usr/bin/promtool (`check rules`, `test rules` on deploy/prometheus/).
#   - PyPI `kubernetes-validate` (bundles the Kubernetes JSON schemas, validates offline) and
#     PyYAML, into .ops-venv/ in the repository.
#
#   scripts/ops-tools.sh install   install what is missing (default)
#   scripts/ops-tools.sh venv      print the venv's bin directory
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.ops-venv
K8S_VALIDATE_VERSION=1.37.0

log() { printf 'ops-tools.sh: %s\n' "$*" >&2; }

install_prometheus() {
  if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
    return 0
  fi
  log "installing Debian's prometheus package (prometheus and promtool)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # The package's postinst would start a service; nothing in the tests relies on it.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || { log "the prometheus package did not give /usr/bin/prometheus and /usr/bin/promtool"; exit 1; }
}

install_venv() {
  if [ -x "$VENV/bin/kubernetes-validate" ] && "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
    return 0
  fi
  local python
  python=$(command -v python3 || command -v python) || { log "python3 is needed for kubernetes-validate"; exit 1; }
  log "installing kubernetes-validate==$K8S_VALIDATE_VERSION into $VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet "kubernetes-validate==$K8S_VALIDATE_VERSION" pyyaml
}

case "${1:-install}" in
  install) install_prometheus; install_venv ;;
  venv) echo "$VENV/bin" ;;
  *) log "usage: $0 [install|venv]"; exit 2 ;;
esac
