#!/usr/bin/env bash
# Installs what `kiln bench --compare ort,torch` needs beyond scripts/setup.sh: the ONNX Runtime
# peer's npm packages (bench/peers/node_modules, from the committed package-lock.json) and
# OpenBLAS for Debian's PyTorch, whose linear layers otherwise run in the reference BLAS.
# Idempotent: what is already there is left alone. Needs node/npm (Node 20) in PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libopenblas0-openmp python3-torch python3-torchvision python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-bench: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

if ! command -v npm >/dev/null; then
  echo "setup-bench: npm not found: install Node.js 20 (node and npm) first" >&2
  exit 1
fi
peers=bench/peers
if [ -f "$peers/node_modules/onnxruntime-node/package.json" ] &&
   [ "$(node -p "require('./$peers/node_modules/onnxruntime-node/package.json').version")" = \
     "$(node -p "require('./$peers/package-lock.json').packages['node_modules/onnxruntime-node'].version")" ]; then
  echo "setup-bench: $peers/node_modules is up to date"
else
  # The package's install script fetches the CUDA provider from nuget; the CPU runtime ships
  # in the npm package itself, so skip the fetch (there may be no network beyond npm).
  (cd "$peers" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund)
fi
node -e "require('./$peers/node_modules/onnxruntime-node')" ||
  { echo "setup-bench: onnxruntime-node does not load" >&2; exit 1; }
echo "setup-bench: ready (peers in $peers: ort_peer.js, torch_peer.py, export.py)"
