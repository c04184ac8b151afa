#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tests and the quickstart use.
# Idempotent: does nothing (not even `apt-get update`) when all are present.
set -euo pipefail

PACKAGES=(
  # Build.
  bazel-bootstrap bazel-rules-java bazel-platforms g++ git ca-certificates
  # gRPC, Protobuf, Abseil.
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev libabsl-dev
  # Model and vectors.
  libtorch-dev libfaiss-dev libopenblas-dev
  # Serving plumbing.
  libcpp-httplib-dev nlohmann-json3-dev libssl-dev zlib1g-dev
  # Images for the ViT backbone.
  libpng-dev libjpeg-dev
  # The similarity endpoint: DICOM decoding; real data for its tests and
  # evaluation (pydicom ships real sample DICOM files; sword modules are
  # verse-aligned English and Spanish Bibles, read with diatheke).
  libdcmtk-dev dcmtk python3-pydicom dataset-fashion-mnist
  sword-text-kjv sword-text-sparv libsword-utils diatheke
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev prometheus curl procps
  # Reference checks in tests (Debian's torch matches libtorch 1.13).
  python3 python3-torch python3-numpy python3-grpcio python3-protobuf
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install_deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install_deps: done"
