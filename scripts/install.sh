#!/bin/sh
# Build the project's wheel and install it into a fresh virtual environment, then check the installed
# console script works. The Dockerfile runs exactly this, and tests/test_packaging.py runs it into a temporary
# directory, so what the image contains is what the tests exercised.
#
# usage: scripts/install.sh SOURCE_DIR VENV_DIR
# environment:
#   PYTHON        interpreter that builds the wheel and creates the venv (default: python3)
#   DEPS_FROM     unset (default): install the wheel's dependencies from the hash-pinned lock
#                 SOURCE_DIR/requirements/runtime.txt (exact versions, every file checked by hash).
#                 A site-packages directory: install the wheel alone and let the venv import its
#                 dependencies from there (offline tests; never used for the image).
#   BUILD_ISOLATION 1 (default): build in an isolated environment (fetches the build backend).
#                 0: build with the interpreter's own setuptools (offline).
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR VENV_DIR" >&2
    exit 2
fi
src=$1
venv=$2
python=${PYTHON:-python3}
if [ -e "$venv" ]; then
    echo "$0: $venv already exists; refusing to install over it" >&2
    exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
wheels=$work/wheels

# Build from a clean copy of exactly what the image gets (the Dockerfile's COPY lines): setuptools writes
# build/ and *.egg-info next to the sources, and a stale build/lib can carry deleted modules into the wheel.
mkdir -p "$work/src"
cp "$src/pyproject.toml" "$src/README.md" "$work/src/"
lock=$src/requirements/runtime.txt
cp -R "$src/autoscaler" "$work/src/autoscaler"
find "$work/src" -name __pycache__ -type d -prune -exec rm -rf {} +

isolation=""
[ "${BUILD_ISOLATION:-1}" = 0 ] && isolation="--no-build-isolation"
# shellcheck disable=SC2086
"$python" -m pip wheel --quiet --no-deps $isolation --wheel-dir "$wheels" "$work/src"

"$python" -m venv "$venv"
pip_install() {
    # Bytecode is compiled at install time (pip's default), so nothing needs writing at run time.
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check "$@"
}
if [ -z "${DEPS_FROM:-}" ]; then
    # Exactly the locked versions, each file checked against its hash; nothing is resolved at build time.
    pip_install --require-hashes --only-binary :all: -r "$lock"
fi
pip_install --no-deps "$wheels"/*.whl
if [ -n "${DEPS_FROM:-}" ]; then
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # Appended after the venv's own site-packages, so the freshly installed wheel still wins.
    printf '%s\n' "$DEPS_FROM" > "$site/_deps_from.pth"
fi
# The image runs as a non-root user with a read-only root filesystem: pip is not needed there.
"$venv/bin/python" -m pip uninstall --quiet --yes pip >/dev/null

# Smoke test of the installed entry point, from a neutral directory so the source tree is not imported.
cd /
"$venv/bin/inference-autoscaler" --version
"$venv/bin/inference-autoscaler" crd >/dev/null
