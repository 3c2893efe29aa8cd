#!/usr/bin/env bash
# Idempotent setup for a fresh machine: system packages (when root), then the
# project environment in .venv from the committed lock file. Safe to re-run;
# a stamp keyed on the lock file makes the no-change case near-instant.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
want_tests=${1:-}
export UV_PYTHON_DOWNLOADS=never

apt_missing=()
need() { command -v "$1" >/dev/null 2>&1 || apt_missing+=("$2"); }
need git git
need bwrap bubblewrap
if [ "$want_tests" = "--tests" ]; then
  need chromium chromium
  need tmux tmux
  [ -e /usr/sbin/mkfs.ext4 ] || [ -e /sbin/mkfs.ext4 ] || apt_missing+=(e2fsprogs)
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  else
    echo "setup: missing system packages (install them with your package manager): ${apt_missing[*]}" >&2
  fi
fi

# uv itself comes from PyPI into a small bootstrap environment.
BOOT=.cache/bootstrap
if [ ! -x "$BOOT/bin/uv" ]; then
  echo "setup: bootstrapping uv"
  "$PYTHON" -m venv "$BOOT"
  "$BOOT/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.8"
fi

stamp=.venv/.flowyard-setup
hash=$(cat uv.lock pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  echo "setup: syncing .venv from uv.lock"
  # Bytecode compiled now: where PYTHONDONTWRITEBYTECODE is set, every start
  # would otherwise compile the server's dependencies from source.
  "$BOOT/bin/uv" sync --frozen --python "$PYTHON" --quiet --compile-bytecode
  echo "$hash" > "$stamp"
fi
# Flowyard's own modules too (quick when nothing changed).
.venv/bin/python -m compileall -q -j 0 flowyard >/dev/null
