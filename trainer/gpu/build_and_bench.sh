#!/usr/bin/env bash
# Builds the trainer's LibTorch core + the device benchmark against the CUDA
# LibTorch inside the PyTorch package and runs the benchmark.
#
# For a GPU machine with python3 + torch (CUDA), CMake and ninja, and nothing
# else: no Bazel, no Abseil, no Debian -dev packages. Only the LibTorch-only
# part of the trainer builds there (model/nn/*, trainer/training/loss,
# trainer/training/evaluation); the data layer and training loop depend on Abseil.
#
# Usage (from anywhere): trainer/gpu/build_and_bench.sh [build_dir] [extra bench flags]
# Output: JSON lines from the benchmark (CPU and, when present, CUDA).
# UNTESTED: written without access to a GPU machine; the bench itself builds
# and runs on CPU under Bazel (//trainer/gpu:bench).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-${TMPDIR:-/tmp}/recsys-trainer-gpu-build}"
shift || true

# TORCH_CMAKE_PREFIX overrides the package's LibTorch (e.g. Debian's CPU
# LibTorch: /usr/lib/x86_64-linux-gnu/cmake, used to check this script here).
prefix="${TORCH_CMAKE_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}"
cuda="$(python3 -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)"
echo "torch cmake prefix: ${prefix}; cuda available: ${cuda}" >&2

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "${here}" -B "${build}" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="${prefix}"
cmake --build "${build}" --parallel "$(nproc)"

"${build}/bench" --device=cpu --steps=5 "$@"
if [ "${cuda}" = "1" ]; then
  "${build}/bench" --device=cuda --modalities=1 --steps=50 "$@"
  "${build}/bench" --device=cuda --modalities=2 --steps=50 "$@"
  "${build}/bench" --device=cuda --modalities=2 --steps=50 --amp=0 "$@"
fi
