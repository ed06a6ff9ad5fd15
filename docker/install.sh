#!/bin/sh
# Build Qianbao's wheel from this checkout and install it, with exactly the dependencies
# uv.lock pins (checked by hash), into a fresh virtual environment.
#
# The Dockerfile's build stage and tests/test_packaging.py both run this script, so the
# test installs the way the image does.
#
#   usage: docker/install.sh VENV [PYTHON]     (run from the project root; UV=path to uv)
set -eu

venv=$1
python=${2:-python3}
uv=${UV:-uv}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The wheel, built from the sdist: that proves the sdist complete, and leaves no build/
#    folder in the checkout.
"$uv" build --quiet --out-dir "$work/dist" .

# 2. The runtime dependencies as locked: no dev extra, not the project itself, with hashes.
"$uv" export --quiet --frozen --no-dev --no-emit-project --format requirements-txt \
  --output-file "$work/requirements.txt"

# 3. A fresh environment: the locked dependencies (every file checked by hash), then the
#    wheel alone, then a check that the wheel's requirements are all met by the lock.
"$uv" venv --quiet --python "$python" "$venv"
"$uv" pip install --quiet --python "$venv/bin/python" --require-hashes --no-deps \
  -r "$work/requirements.txt"
"$uv" pip install --quiet --python "$venv/bin/python" --no-deps "$work"/dist/*.whl
"$uv" pip check --quiet --python "$venv/bin/python"
