#!/usr/bin/env bash
# The one command that refreshes the lock files from pyproject.toml. Run it after any change to the dependencies.
#   requirements-test.lock  runtime + `test` extra + build backend: what scripts/test.sh (and so CI) installs
#   requirements.lock       runtime + build backend: what the README's Quickstart installs (same pins, a subset)
# Exact versions with hashes, resolved for Python >= 3.11 on any platform (uv's universal resolution: markers where
# Python versions or platforms differ). The build backend is locked too so that `pip install --no-build-isolation
# -e .` builds drplan with a pinned setuptools.
#
#   scripts/lock.sh                        keep the pins already there; add/remove only what pyproject.toml changed
#   scripts/lock.sh --upgrade              every package to the newest version pyproject.toml allows
#   scripts/lock.sh --upgrade-package NAME one package (and what it needs) to its newest allowed version
#
# Arguments go to the `uv pip compile` of the test lock as they are; the runtime lock then takes its pins from it.
# The resolver (uv, pinned below) is installed once into .cache/lock-tools with pip, as pip is configured here;
# uv reads no pip configuration and resolves against the default package index. The lock names no index.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
tools=.cache/lock-tools
if [ "$("$tools/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  [ -x "$tools/bin/python" ] || python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q "uv==$UV_VERSION"
fi

# pyproject.toml's [build-system] requires, one a line, fed to uv on stdin.
build_requires() {
  "$tools/bin/python" -c 'import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))'
}

compile() {
  local out=$1
  shift
  build_requires | "$tools/bin/uv" pip compile --quiet pyproject.toml - \
    --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command "scripts/lock.sh" --output-file "$out" "$@"
}

# The test lock first. The runtime lock starts as a copy of it, whose pins uv keeps as its preferences, so both
# install the same versions; the check after it says so or fails.
compile requirements-test.lock --extra test "$@"
cp requirements-test.lock requirements.lock
compile requirements.lock
pins() { grep -o '^[A-Za-z0-9][^ ]*==[^ ]*\( ;[^\\]*\)\?' "$1" | sort; }
if extra=$(comm -23 <(pins requirements.lock) <(pins requirements-test.lock)) && [ -n "$extra" ]; then
  echo "scripts/lock.sh: requirements.lock pins what requirements-test.lock does not:" >&2
  echo "$extra" >&2
  exit 1
fi

echo "scripts/lock.sh: $(grep -c '^[A-Za-z0-9]' requirements.lock) pins in requirements.lock," \
  "$(grep -c '^[A-Za-z0-9]' requirements-test.lock) in requirements-test.lock"
