#!/usr/bin/env bash
# Idempotent set-up: installs every Debian package dne-sweep needs to build, test and analyse.
# Safe to run repeatedly; installs only what is missing. Needs root (or sudo) and Debian's archive.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libtorch-dev                      # LibTorch 1.13 (CPU) from Debian
  libopenblas0-pthread              # ~28x faster GEMM than the reference BLAS for LibTorch
  openmpi-bin libopenmpi-dev        # MPI runtime + headers
  libhdf5-dev hdf5-tools            # HDF5 C library + h5dump (independent reader)
  libboost-program-options-dev      # CLI
  libgtest-dev googletest           # unit + MPI tests
  libtomlplusplus-dev               # TOML configs (header-only, exact error positions)
  libstb-dev                        # PNG encode/decode (stb_image / stb_image_write)
  zlib1g-dev                        # gzip-compressed CSV tables (MIMIC-CXR metadata)
  libcpp-httplib-dev                # HTTP client + server for the Open Inference Protocol (fm.kind = "remote", dne serve)
  nlohmann-json3-dev                # JSON for the same protocol (header-only; exact float32 through its SAX parser)
  libgdcm-dev                       # DICOM (GDCM: decodes JPEG lossless/baseline, JPEG 2000, JPEG-LS, RLE; DCMTK lacks JPEG 2000)
  python3-torch                     # scripts/import_vit.py (timm/MAE checkpoints) and its tests; no timm needed
  python3 python3-h5py python3-numpy python3-matplotlib python3-pytest  # analysis/ and its tests
  python3-pil                       # an independent JPEG/PNG decoder for the image-cache tests; scripts/make_jpeg_set.py
  slurm-wlm munge                   # a private one-node Slurm cluster for the launch/slurm.sbatch tests (scripts/slurm-cluster.sh)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present"
fi
