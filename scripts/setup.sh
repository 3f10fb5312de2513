#!/usr/bin/env bash
# Set up a fresh machine for angio3d: Debian packages (headless rendering, optional chromium),
# a virtual environment in .venv/ with the pinned requirements, and the package itself (editable).
# Idempotent: re-running does nothing when requirements.txt and pyproject.toml are unchanged.
#   scripts/setup.sh            runtime + study + tests
#   scripts/setup.sh --browser  also Debian chromium (for the screenshot test)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want_browser=0
[ "${1:-}" = "--browser" ] && want_browser=1

# 1. Debian packages: EGL + Mesa so VTK renders offscreen (without them a render segfaults).
pkgs="libegl1 libegl-mesa0 libgl1-mesa-dri"
[ "$want_browser" = 1 ] && pkgs="$pkgs chromium"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
    elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then
        sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "setup: please install the system packages:$missing (headless rendering needs EGL/Mesa)" >&2
        exit 1
    fi
fi

# 2. Python environment.
stamp=.venv/.setup-stamp
hash=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (angio3d)" >/dev/null
echo "$hash" > "$stamp"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
