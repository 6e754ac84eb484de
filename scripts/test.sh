#!/usr/bin/env bash
# Install everything the tests need, from scratch, and run them.
# Used by the README's Quickstart and by .ci/run. Idempotent: re-running reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Go and govmomi's source, to build VMware's vCenter simulator (vcsim) for the pyVmomi tests;
# Chromium, for the tests that open the Prefect UI as an operator would (tests/ui, headless, DevTools protocol).
PKGS=()
if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/github.com/vmware/govmomi ]; then
  PKGS+=(golang-go golang-github-vmware-govmomi-dev)
fi
[ -x /usr/bin/chromium ] || PKGS+=(chromium)
if [ "${#PKGS[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${PKGS[@]}" >/dev/null
fi

# The virtualenv: the exact pins of requirements-test.lock (runtime + test extras + the build backend, with hashes;
# scripts/lock.sh refreshes it), then the project itself, editable, without resolving anything more.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements-test.lock
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
# A dependency added to pyproject.toml but not to the lock fails here, not later as an ImportError.
.venv/bin/python - <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement

missing = []
for req in map(Requirement, requires("drplan") or []):
    if req.marker is None or req.marker.evaluate({"extra": "test"}):
        try:
            if not req.specifier.contains(version(req.name), prereleases=True):
                missing.append(f"{req} (installed: {version(req.name)})")
        except PackageNotFoundError:
            missing.append(f"{req} (not installed)")
if missing:
    sys.exit("requirements-test.lock is older than pyproject.toml; run scripts/lock.sh. Not locked: "
             + ", ".join(missing))
PY

# vcsim, built once and cached under .cache/vcsim.
scripts/build-vcsim.sh

# Keep Prefect's state and telemetry out of the user's home during tests.
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # the library, strict on the plan language, recovery points and run model (pyproject.toml)
.venv/bin/python -m pytest "$@"
