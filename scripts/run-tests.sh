#!/usr/bin/env bash
# Sets up (deps + asan build) and runs every test under ASan+UBSan. Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh asan
ctest --preset asan -j "${KILN_JOBS:-2}"
