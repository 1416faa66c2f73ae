#!/usr/bin/env bash
# Builds the Atlas container image with Podman from wheels made on this host.
#
#   BASE_IMAGE  the Dockerfile's base (default: its own, the official python:3.11-slim, pulled);
#               tests/prepare.sh passes localhost/atlas-base:bookworm, made with debootstrap
#   IMAGE       the tag to build (default localhost/atlas:<version>)
#   PYTHON      the Python that builds the wheels, matching the base's 3.11 (default .venv's)
#
# Prints the image tag on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
version=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image=${IMAGE:-localhost/atlas:$version}
rm -rf dist/wheels
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir dist/wheels . >&2
args=(--build-arg "VERSION=$version" -t "$image" -f Dockerfile)
if [ -n "${BASE_IMAGE:-}" ]; then
  args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  case "$BASE_IMAGE" in localhost/*) args+=(--pull=never) ;; esac
fi
podman build "${args[@]}" . >&2
echo "$image"
