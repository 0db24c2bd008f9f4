#!/usr/bin/env bash
# Configures and builds yolo7.cpp (Release, -march=x86-64-v3) into ${BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > /dev/null
ninja -C "$BUILD_DIR" -j"$(nproc)"
