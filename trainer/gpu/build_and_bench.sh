#!/usr/bin/env bash
# The one command for the GPU machine: builds the whole trainer (data layer,
# training loop, evaluation, export; `train`, `train_bench`, `bench`) with
# CMake against the LibTorch inside the PyTorch package, checks that no real
# Abseil header went into it (absl_shim/ stands in; see README), and runs
# the benchmarks: train_bench on CPU and, when CUDA is there, on the GPU
# (steps/s, seconds per epoch with validation, peak GPU memory), and the
# device micro-bench `bench`.
#
# Needs: python3 with torch, CMake >= 3.18, a C++17 compiler (ninja if
# present). Nothing else: no Bazel, no Abseil, no Debian -dev packages.
#
# Usage: trainer/gpu/build_and_bench.sh [build_dir]
# Environment:
#   TORCH_CMAKE_PREFIX     LibTorch's CMake prefix (default: the torch package's;
#                          /usr/lib/x86_64-linux-gnu/cmake checks it with Debian's)
#   NLOHMANN_JSON_INCLUDE  dir holding nlohmann/json.hpp when neither the torch
#                          package nor the system has it
#   RECSYS_BENCH_ARGS      extra train_bench flags (e.g. --interactions=... --text_cache=...)
#   RECSYS_BUILD_ONLY=1    build and check only
# Output: JSON lines (train_bench reports, bench lines) on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
build="${1:-${TMPDIR:-/tmp}/recsys-trainer-gpu-build}"
py="${PYTHON:-python3}"

prefix="${TORCH_CMAKE_PREFIX:-$("${py}" -c 'import torch; print(torch.utils.cmake_prefix_path)')}"
cuda="$("${py}" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)"
if [ -n "${TORCH_CMAKE_PREFIX:-}" ]; then cuda=0; fi  # a given (CPU) LibTorch: no CUDA runs
echo "torch cmake prefix: ${prefix}; cuda available: ${cuda}" >&2

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
json=()
if [ -n "${NLOHMANN_JSON_INCLUDE:-}" ]; then json=(-DNLOHMANN_JSON_INCLUDE="${NLOHMANN_JSON_INCLUDE}"); fi
cmake -S "${here}" -B "${build}" "${generator[@]}" "${json[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="${prefix}" >&2
cmake --build "${build}" --parallel "$(nproc)" >&2

# No Abseil but the shim: every header each object was compiled from, as
# the compiler reports it (-M over compile_commands.json), must not come
# from an absl/ directory outside absl_shim/.
"${py}" - "${build}/compile_commands.json" "${here}/absl_shim" <<'PY'
import json, shlex, subprocess, sys
commands = json.load(open(sys.argv[1]))
shim = sys.argv[2]
bad, files = set(), 0
for c in commands:
    args = shlex.split(c["command"])
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MT", "-MF", "-MQ"):
            skip = True
            continue
        if a in ("-c",) or a.startswith("-M"):
            continue
        out.append(a)
    deps = subprocess.run(out + ["-M"], cwd=c["directory"], capture_output=True, text=True, check=True).stdout
    files += 1
    for d in deps.replace("\\\n", " ").split():
        if "/absl/" in d and not d.startswith(shim):
            bad.add(d)
if bad:
    sys.exit("real Abseil headers used: " + ", ".join(sorted(bad)[:10]))
print(f"abseil check: {files} translation units, no Abseil header outside absl_shim/", file=sys.stderr)
PY

if [ "${RECSYS_BUILD_ONLY:-0}" = "1" ]; then exit 0; fi
# shellcheck disable=SC2086
"${build}/train_bench" --device=cpu --threads=1 --steps=20 --epoch_threads= \
  --reference_script= ${RECSYS_BENCH_ARGS:-}
"${build}/bench" --device=cpu --steps=5
if [ "${cuda}" = "1" ]; then
  # shellcheck disable=SC2086
  "${build}/train_bench" --device=cuda --threads=1 --steps=100 --epoch_threads=1 \
    --reference_script= ${RECSYS_BENCH_ARGS:-}
  "${build}/bench" --device=cuda --modalities=1 --steps=50
  "${build}/bench" --device=cuda --modalities=2 --steps=50
  "${build}/bench" --device=cuda --modalities=2 --steps=50 --amp=0
fi
