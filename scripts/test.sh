#!/usr/bin/env bash
# Install everything the tests need, from scratch, and run them.
# Used by the README's Quickstart and by .ci/run. Idempotent: re-running reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Go and govmomi's source, to build VMware's vCenter simulator (vcsim) for the pyVmomi tests.
if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/github.com/vmware/govmomi ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-go golang-github-vmware-govmomi-dev >/dev/null
fi

# The virtualenv and the project with its test extras.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"

# vcsim, built once and cached under .cache/vcsim.
scripts/build-vcsim.sh

# Keep Prefect's state and telemetry out of the user's home during tests.
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
