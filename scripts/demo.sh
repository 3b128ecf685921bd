#!/usr/bin/env bash
# README command 1: set up (if needed) and render the sample portrait speaking the sample
# speech into out/demo.mp4 (512x512, 25 fps, H.264 + AAC).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p out
.venv/bin/vasa-generate --portrait samples/astronaut.png --audio samples/speech_en.wav --out out/demo.mp4 "$@"
echo "demo written: $(pwd)/out/demo.mp4"
