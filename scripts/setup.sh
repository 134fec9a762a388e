#!/usr/bin/env bash
# Installs kiln's dependencies from Debian bookworm (apt-get) and builds the release
# preset. Idempotent: re-running only rebuilds what changed.
#   scripts/setup.sh            # deps + release build
#   scripts/setup.sh asan       # deps + the asan (ASan+UBSan) build used by the tests
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"

packages=(
  g++-12 cmake ninja-build ccache pkg-config
  llvm-14-dev libdnnl-dev
  libfmt-dev libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev zlib1g-dev libzip-dev libjpeg-dev libpng-dev
  python3-torch python3-torchvision python3-numpy python3-pil
  dataset-fashion-mnist libonnx-testdata
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

jobs="${KILN_JOBS:-2}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$jobs"
echo "setup: built build/$preset"
