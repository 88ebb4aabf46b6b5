#!/usr/bin/env bash
# GPU check of the NCCL communicator (docs/gpu.md). Run on a node with a CUDA GPU, CUDA, NCCL and
# Open MPI (or after unpacking missing dependencies into a prefix, --deps):
#   1. configure with -DDNE_WITH_NCCL=ON (configure fails if CUDA or NCCL is not found), build
#      test_comm + test_comm_self, run `ctest -L gpu` (comm_nccl_1 must PASS, not skip, when a GPU
#      is visible; comm_nccl_2 needs two GPUs on the node and skips otherwise), then the MPI-only
#      communicator tests (comm_mpi_1..3, comm_self.*);
#   2. --bench: time allreduce_sum through the MPI and NCCL communicators, 8 B .. 64 KiB (plus
#      1 MiB and 16 MiB for context), 1 rank, and 2 ranks for MPI (NCCL needs a GPU per rank);
#   3. --full: also build everything (dne, test_base, test_torch), run `ctest -L unit` (the CUDA
#      tensor-sum case must run, not skip, with a GPU) and `dne bench`: the default FM, ViT-B/16
#      at 224 x 224 in fp32 and bf16, and a GeZO step (--zo) against its forward floor.
#
# usage: scripts/gpu-check.sh [--src DIR] [--build DIR] [--deps PREFIX] [--bench] [--full]
#                             [-- extra cmake -D options]
#   --src DIR      source tree (default: the repository holding this script)
#   --build DIR    build directory (default: <src>/build-gpu)
#   --deps PREFIX  prefix holding dependencies the node lacks, e.g. Debian/Ubuntu .deb files
#                  unpacked with `dpkg -x X.deb PREFIX` (PREFIX/usr/include, PREFIX/usr/lib/...):
#                  added to CMAKE_PREFIX_PATH, CPATH, LIBRARY_PATH and LD_LIBRARY_PATH
# Environment:
#   CUDAToolkit_ROOT  CUDA toolkit (default /usr/local/cuda when it exists)
#   NCCL_HOME         directory with include/nccl.h and lib/libnccl.so[.2] (default: the CUDA
#                     toolkit, then the pip wheel nvidia-nccl-cu* of python3)
#   Torch_DIR         LibTorch's CMake directory (default: python3's torch.utils.cmake_prefix_path,
#                     else whatever find_package(Torch) finds, e.g. Debian's libtorch-dev)
#   DNE_JOBS          parallel build jobs (default: nproc)
#   DNE_WERROR        ON/OFF (default OFF: a GPU node's compiler may warn where CI's does not;
#                     the warnings are counted and listed at the end)
# Writes its logs to <build>/gpu-check/*.log. Exit status 0 when every step that ran passed.
set -uo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here"
build=""
deps=""
do_bench=0
do_full=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --src) src="$(cd "$2" && pwd)"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --deps) deps="$(cd "$2" && pwd)"; shift 2 ;;
    --bench) do_bench=1; shift ;;
    --full) do_full=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$build" ] || build="$src/build-gpu"
mkdir -p "$build/gpu-check"
build="$(cd "$build" && pwd)"
logs="$build/gpu-check"
jobs="${DNE_JOBS:-$(nproc)}"
status=0
summary=()
note() { summary+=("$*"); echo "gpu-check: $*"; }
fail() { status=1; note "FAIL: $*"; }

# Open MPI as root (containers), more ranks than cores.
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1

# ---- dependencies -----------------------------------------------------------------------------
prefix_path=()
if [ -n "$deps" ]; then
  arch_lib="$deps/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
  prefix_path+=("$deps/usr")
  export CPATH="$deps/usr/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$arch_lib:$deps/usr/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$arch_lib:$deps/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

cuda="${CUDAToolkit_ROOT:-}"
if [ -z "$cuda" ] && [ -d /usr/local/cuda ]; then cuda=/usr/local/cuda; fi

nccl_args=()
nccl_home="${NCCL_HOME:-}"
if [ -z "$nccl_home" ] && [ -n "$cuda" ] && [ -f "$cuda/include/nccl.h" ]; then nccl_home="$cuda"; fi
if [ -z "$nccl_home" ] && command -v python3 >/dev/null; then
  # pip wheel nvidia-nccl-cu12/cu13: a namespace package with include/nccl.h and lib/libnccl.so.2.
  nccl_home="$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)"
fi
if [ -n "$nccl_home" ]; then
  nccl_lib=""
  for f in "$nccl_home"/lib64/libnccl.so "$nccl_home"/lib/libnccl.so "$nccl_home"/lib64/libnccl.so.2 \
           "$nccl_home"/lib/libnccl.so.2; do
    if [ -e "$f" ]; then nccl_lib="$f"; break; fi
  done
  nccl_args=(-DDNE_NCCL_INCLUDE_DIR="$nccl_home/include")
  [ -n "$nccl_lib" ] && nccl_args+=(-DDNE_NCCL_LIBRARY="$nccl_lib")
fi
[ -n "$cuda" ] && nccl_args+=(-DCUDAToolkit_ROOT="$cuda")

if [ -z "${Torch_DIR:-}" ] && command -v python3 >/dev/null; then
  torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)"
  [ -n "$torch_prefix" ] && prefix_path+=("$torch_prefix")
fi
torch_args=()
[ -n "${Torch_DIR:-}" ] && torch_args=(-DTorch_DIR="$Torch_DIR")

# ---- what this node is ------------------------------------------------------------------------
{
  echo "== node"; uname -srm; (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"); ldd --version | head -1
  echo "== GPU"; nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv 2>&1 || true
  echo "== CUDA"; "${cuda:-/usr/local/cuda}/bin/nvcc" --version 2>&1 | tail -2 || true
  echo "== NCCL"; echo "NCCL_HOME=$nccl_home"
  [ -n "$nccl_home" ] && grep -E '^#define NCCL_(MAJOR|MINOR|PATCH|SUFFIX)\b' "$nccl_home/include/nccl.h"
  echo "== MPI"; (mpirun --version 2>&1 | head -1) || echo "no mpirun on PATH"
  echo "== compiler"; c++ --version | head -1; cmake --version | head -1
  echo "== Torch"; python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1 || echo "${Torch_DIR:-}"
} 2>&1 | tee "$logs/node.log"

# ---- 1. configure, build the comm tests, ctest -L gpu -----------------------------------------
IFS=';'; cmake_prefix="${prefix_path[*]:-}"; unset IFS
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
set -x
cmake -S "$src" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DDNE_WITH_NCCL=ON \
  -DDNE_WERROR="${DNE_WERROR:-OFF}" ${cmake_prefix:+-DCMAKE_PREFIX_PATH="$cmake_prefix"} \
  "${nccl_args[@]}" "${torch_args[@]}" "${extra[@]}" >"$logs/configure.log" 2>&1
rc=$?
{ set +x; } 2>/dev/null
grep -E '^-- dne:|Found (MPI|HDF5|Boost|Torch|CUDAToolkit|GTest)|CMake (Error|Warning)' "$logs/configure.log"
if [ $rc -ne 0 ]; then
  tail -40 "$logs/configure.log"
  fail "configure (log: $logs/configure.log)"
  exit 1
fi
note "configure: $(grep -m1 -- '-- dne: NCCL communicator' "$logs/configure.log" | sed 's/^-- //')"

t0=$(date +%s)
# dne too: the gpu_run ctest (tests/gpu) runs a small sweep on cuda against the CPU.
if cmake --build "$build" -j"$jobs" --target test_comm test_comm_self dne >"$logs/build-comm.log" 2>&1; then
  note "build test_comm test_comm_self dne: ok ($(( $(date +%s) - t0 )) s)"
else
  grep -E 'error|Error' "$logs/build-comm.log" | head -30
  fail "build test_comm (log: $logs/build-comm.log)"
  exit 1
fi

gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
(cd "$build" && ctest -L gpu -V --timeout 300) >"$logs/ctest-gpu.log" 2>&1
rc=$?
grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|Skipped|NCCL needs|\[  (PASSED|SKIPPED|FAILED|  OK) \]' "$logs/ctest-gpu.log"
if [ $rc -ne 0 ]; then
  fail "ctest -L gpu (log: $logs/ctest-gpu.log)"
elif [ "${gpus:-0}" -ge 1 ] && ! grep -Eq 'comm_nccl_1 \.+ +Passed' "$logs/ctest-gpu.log"; then
  fail "a GPU is visible but comm_nccl_1 did not pass (skipped?) (log: $logs/ctest-gpu.log)"
elif [ "${gpus:-0}" -ge 1 ] && grep -Eq 'SKIPPED|skipped' "$logs/ctest-gpu.log" && grep -q 'no GPU for this build' "$logs/ctest-gpu.log"; then
  fail "a GPU is visible but gpu_run skipped (a CPU LibTorch? set Torch_DIR to a CUDA one) (log: $logs/ctest-gpu.log)"
else
  note "ctest -L gpu: $(grep -E 'tests passed' "$logs/ctest-gpu.log") ($gpus GPU(s) visible)"
fi

(cd "$build" && ctest -R '^comm_' -LE gpu --output-on-failure) >"$logs/ctest-comm.log" 2>&1
rc=$?
grep -E 'tests passed' "$logs/ctest-comm.log"
if [ $rc -ne 0 ]; then fail "ctest -R ^comm_ -LE gpu (log: $logs/ctest-comm.log)"; else
  note "ctest comm_mpi_1..3 + comm_self.*: $(grep -E 'tests passed' "$logs/ctest-comm.log")"; fi

# ---- 2. MPI vs NCCL all-reduce latency ---------------------------------------------------------
if [ $do_bench -eq 1 ]; then
  mpicxx_bin="$(sed -n 's/^MPI_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")"
  cudart="$(sed -n 's/^CUDA_cudart_LIBRARY:[A-Z]*=//p' "$build/CMakeCache.txt")"
  nccl_inc="$(sed -n 's/^DNE_NCCL_INCLUDE_DIR:[A-Z]*=//p' "$build/CMakeCache.txt")"
  nccl_so="$(sed -n 's/^DNE_NCCL_LIBRARY:[A-Z]*=//p' "$build/CMakeCache.txt")"
  cuda_inc="$(dirname "$(dirname "$cudart")")/include"
  [ -f "$cuda_inc/cuda_runtime.h" ] || cuda_inc="${cuda:-/usr/local/cuda}/include"
  cat >"$logs/comm_bench.cpp" <<'EOF'
// allreduce_sum latency through dne's MPI and NCCL communicators (host buffers; dne-device: the
// NCCL communicator's in-place sum of a device buffer, what the editors use), with the parts of
// the NCCL path timed alone on 1 rank: host<->device staging (pageable and pinned memory) and a
// bare ncclAllReduce on a device buffer. Median over repetitions of `calls` calls each.
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "dne/comm/mpi_communicator.hpp"
#include "dne/comm/nccl_communicator.hpp"
#include "dne/core/errors.hpp"

static double per_call_us(int calls, int reps, const std::function<void()>& fn) {
  for (int i = 0; i < std::max(10, calls / 10); ++i) fn();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto a = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) fn();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count() / calls);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

#define CK(x) do { if ((x) != 0) { std::fprintf(stderr, "%s failed\n", #x); MPI_Abort(MPI_COMM_WORLD, 1); } } while (0)

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::vector<std::size_t> sizes = {8, 64, 512, 4096, 32768, 65536, 1 << 20, 16 << 20};
  auto mpi = dne::comm::make_mpi_communicator(MPI_COMM_WORLD);
  std::unique_ptr<dne::comm::Communicator> nccl;
  try {
    nccl = dne::comm::make_nccl_communicator(MPI_COMM_WORLD);
  } catch (const dne::CommError& e) {
    if (rank == 0) std::printf("NCCL communicator on %d rank(s): CommError: %s\n", size, e.what());
  }
  // Bare CUDA/NCCL parts (1 rank only: one GPU).
  cudaStream_t stream = nullptr;
  ncclComm_t raw = nullptr;
  void* dev = nullptr;
  double* pinned = nullptr;
  void* dne_dev = nullptr;  // a device buffer for dne's in-place device sums (the editors' path)
  if (nccl) CK(cudaMalloc(&dne_dev, sizes.back()));
  if (nccl && size == 1) {
    ncclUniqueId id;
    CK(ncclGetUniqueId(&id));
    CK(ncclCommInitRank(&raw, 1, id, 0));
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CK(cudaMalloc(&dev, sizes.back()));
    CK(cudaMallocHost(reinterpret_cast<void**>(&pinned), sizes.back()));
  }
  if (rank == 0) {
    std::printf("ranks %d; per call [us], median of 7 repetitions\n", size);
    std::printf("%10s %10s %10s %10s %12s %12s %12s %12s\n", "bytes", "mpi", "nccl", "nccl/mpi", "stage-page", "stage-pin",
                "nccl-device", "dne-device");
  }
  for (const std::size_t bytes : sizes) {
    const std::size_t n = bytes / sizeof(double);
    const int calls = bytes <= 65536 ? 2000 : (bytes <= (1 << 20) ? 200 : 20);
    std::vector<double> buf(n, 1.0);
    const double t_mpi = per_call_us(calls, 7, [&] { mpi->allreduce_sum(buf.data(), n); });
    double t_nccl = -1, t_page = -1, t_pin = -1, t_dev = -1, t_dne_dev = -1;
    if (nccl) t_nccl = per_call_us(calls, 7, [&] { nccl->allreduce_sum(buf.data(), n); });
    if (nccl) t_dne_dev = per_call_us(calls, 7, [&] { nccl->allreduce_sum_device(static_cast<double*>(dne_dev), n); });
    if (raw) {
      auto stage = [&](double* host) {
        CK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream));
        CK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, stream));
        CK(cudaStreamSynchronize(stream));
      };
      t_page = per_call_us(calls, 7, [&] { stage(buf.data()); });
      t_pin = per_call_us(calls, 7, [&] { stage(pinned); });
      t_dev = per_call_us(calls, 7, [&] {
        CK(ncclAllReduce(dev, dev, n, ncclFloat64, ncclSum, raw, stream));
        CK(cudaStreamSynchronize(stream));
      });
    }
    if (rank == 0)
      std::printf("%10zu %10.2f %10.2f %10.2f %12.2f %12.2f %12.2f %12.2f\n", bytes, t_mpi, t_nccl,
                  t_nccl > 0 ? t_nccl / t_mpi : -1.0, t_page, t_pin, t_dev, t_dne_dev);
  }
  if (raw) {
    ncclCommDestroy(raw);
    cudaFree(dev);
    cudaFreeHost(pinned);
    cudaStreamDestroy(stream);
  }
  if (dne_dev) cudaFree(dne_dev);
  nccl.reset();
  mpi.reset();
  MPI_Finalize();
  return 0;
}
EOF
  if "$mpicxx_bin" -O2 -std=c++17 -DDNE_WITH_NCCL=1 -I"$src/include" -isystem "$nccl_inc" -isystem "$cuda_inc" \
       "$logs/comm_bench.cpp" -o "$logs/comm_bench" "$build/libdne_comm.a" "$build/libdne_base.a" \
       "$cudart" "$nccl_so" -Wl,-rpath,"$(dirname "$cudart")":"$(dirname "$nccl_so")" >"$logs/bench-build.log" 2>&1; then
    for np in 1 2; do
      echo "== mpirun -n $np comm_bench" | tee -a "$logs/bench.log"
      mpirun -n $np "$logs/comm_bench" 2>&1 | tee -a "$logs/bench.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || fail "comm_bench -n $np (log: $logs/bench.log)"
    done
    note "bench: $logs/bench.log"
  else
    cat "$logs/bench-build.log"
    fail "building comm_bench (log: $logs/bench-build.log)"
  fi
fi

# ---- 3. everything: dne, unit tests, dne bench ---------------------------------------------------
if [ $do_full -eq 1 ]; then
  t0=$(date +%s)
  if cmake --build "$build" -j"$jobs" >"$logs/build-all.log" 2>&1; then
    note "build all: ok ($(( $(date +%s) - t0 )) s)"
    (cd "$build" && ctest -L unit -j"$jobs" --output-on-failure) >"$logs/ctest-unit.log" 2>&1
    rc=$?
    grep -E 'tests passed|Failed|\*\*\*' "$logs/ctest-unit.log" | head -40
    if [ $rc -ne 0 ]; then fail "ctest -L unit (log: $logs/ctest-unit.log)"; else
      note "ctest -L unit: $(grep -E 'tests passed' "$logs/ctest-unit.log")"; fi
    if [ "${gpus:-0}" -ge 1 ] && grep -q 'TensorSum.CudaTensorsUseTheDeviceSumOrAreStagedThroughTheHost .*Skipped' "$logs/ctest-unit.log"; then
      fail "a GPU is visible but the CUDA tensor-sum test skipped (a CPU LibTorch?) (log: $logs/ctest-unit.log)"
    fi
    # The issue's record: the built-in FM and ViT-B/16 at 224 x 224, fp32 and bf16, against the
    # GEMM floor of the same precision; GeZO's step against its forward floor.
    vit_b16=(--set fm.kind=vit --set data.image_size=224 --set fm.patch_size=16
             --set fm.embed_dim=768 --set fm.depth=12 --set fm.heads=12 --set fm.batch_size=64)
    for args in "" "${vit_b16[*]} --set run.precision=fp32" "${vit_b16[*]} --set run.precision=bf16" \
                "--zo gezo ${vit_b16[*]} --set run.precision=bf16 --set dne.batch_size=32 --steps 5"; do
      echo "== dne bench $args" | tee -a "$logs/dne-bench.log"
      # shellcheck disable=SC2086  # word splitting of the argument set is intended
      if "$build/dne" bench $args 2>&1 | tee -a "$logs/dne-bench.log"; then note "dne bench $args: ok"; else
        fail "dne bench $args (log: $logs/dne-bench.log)"; fi
    done
  else
    grep -E 'error' "$logs/build-all.log" | head -40
    fail "build all (log: $logs/build-all.log)"
  fi
fi

# Warnings in the project's own code (DNE_WERROR=OFF lets the build go on past them).
warnings=$(cat "$logs"/build-*.log 2>/dev/null | grep -F "$src/" | grep -E ':[0-9]+:[0-9]+: warning:' | sort -u)
if [ -n "$warnings" ]; then
  note "$(echo "$warnings" | wc -l) warning(s) in the project's own code:"
  echo "$warnings" | head -30
fi

echo "== gpu-check summary"
printf '  %s\n' "${summary[@]}"
exit $status
