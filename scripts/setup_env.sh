#!/usr/bin/env bash
# Creates .venv/ at the repository root with the OpenMMLab stack pinned in constraints.txt
# (pyproject.toml declares ranges, so the package itself installs beside any compatible stack).
# Idempotent: a finished environment is detected by a stamp file and left alone.
# mmcv 2.1.0 has no wheel on PyPI for this torch; it is built from its sdist (with
# its compiled ops) once and cached outside the checkout, keyed by versions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
CONSTRAINTS="$ROOT/constraints.txt"
pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$CONSTRAINTS"; }
TORCH_VERSION="$(pin torch)"
TORCHVISION_VERSION="$(pin torchvision)"
MMCV_VERSION="$(pin mmcv)"
CACHE_ROOT="${BBAM_CAPTUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bbam-captum}"
STAMP="$VENV/.bbam-captum-env"
STAMP_KEY="$(cat "$ROOT/pyproject.toml" "$CONSTRAINTS" "$ROOT/scripts/setup_env.sh" "$ROOT/scripts/check_env.py" \
    | sha256sum | cut -c1-16)"

say() { printf '[setup] %s\n' "$*"; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_KEY" ]]; then
    say "environment .venv is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating virtual environment .venv with $PY"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --quiet --upgrade pip
PIN=("${PIP[@]}" install --quiet -c "$CONSTRAINTS")

say "installing build tools and torch $TORCH_VERSION / torchvision $TORCHVISION_VERSION (about a minute)"
"${PIN[@]}" setuptools wheel ninja torch torchvision

PY_TAG="$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
MMCV_CACHE="$CACHE_ROOT/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PY_TAG"
mmcv_wheel() { ls "$MMCV_CACHE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1; }

if [[ -z "$(mmcv_wheel)" ]]; then
    say "building mmcv $MMCV_VERSION with compiled ops from source (about 10 minutes on 2 cores; cached afterwards)"
    BUILD_DIR="$(mktemp -d)"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    "${PIP[@]}" download --quiet --no-deps --no-build-isolation --no-binary=:all: "mmcv==$MMCV_VERSION" -d "$BUILD_DIR"
    tar -xzf "$BUILD_DIR"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD_DIR"
    SRC="$BUILD_DIR/mmcv-$MMCV_VERSION"
    # torch 2.14's headers refuse anything older than C++20; mmcv hard-codes C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    "${PIN[@]}" mmengine numpy packaging addict yapf pyyaml
    (cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
        "$VENV/bin/python" -m pip wheel --no-build-isolation --no-deps -v . -w "$BUILD_DIR/dist" \
        > "$BUILD_DIR/build.log" 2>&1) || { tail -n 40 "$BUILD_DIR/build.log"; say "mmcv build failed"; exit 1; }
    mkdir -p "$MMCV_CACHE"
    cp "$BUILD_DIR"/dist/mmcv-*.whl "$MMCV_CACHE/.partial.whl.tmp"
    mv "$MMCV_CACHE/.partial.whl.tmp" "$MMCV_CACHE/$(basename "$BUILD_DIR"/dist/mmcv-*.whl)"
else
    say "using cached mmcv wheel $(mmcv_wheel)"
fi

say "installing mmcv, the OpenMMLab stack, captum and bbam-captum (editable)"
"${PIN[@]}" "$(mmcv_wheel)"
"${PIN[@]}" -e "$ROOT[test]"
# grad-cam pulls opencv-python-headless beside mmcv's opencv-python; both own cv2/.
# Reinstalling one of them last leaves a single consistent cv2 module.
CV_VERSION="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("opencv-python"))')"
"${PIP[@]}" install --quiet --force-reinstall --no-deps "opencv-python==$CV_VERSION"

say "checking the environment: the versions of constraints.txt, the stack's imports, mmcv's ops"
"$VENV/bin/python" "$ROOT/scripts/check_env.py" "$CONSTRAINTS"
echo "$STAMP_KEY" > "$STAMP"
say "environment ready: $VENV"
