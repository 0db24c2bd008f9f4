#!/usr/bin/env bash
# yolo7.cpp entry point.
#   ./run.sh demo   set up everything, build, run the main job on the built-in default
#   ./run.sh test   set up everything, build from scratch, run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-demo}
bash scripts/install_deps.sh
case "$what" in
  test)
    rm -rf build-test
    BUILD_DIR=build-test bash scripts/build.sh -DY7_BUILD_BENCH=OFF
    # tests run in parallel, one per core: one OpenMP thread each, so that spinning OpenMP teams
    # of concurrent tests never oversubscribe the cores
    cd build-test && OMP_NUM_THREADS=1 ctest --output-on-failure -j"$(nproc)" --timeout 900
    ;;
  demo)
    BUILD_DIR=build bash scripts/build.sh
    bash scripts/demo.sh build/yolo7
    ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
