// Entry point of the `dne` program: MPI set-up, subcommand dispatch and error reporting.
//
// Every error ends as one line on stderr: "dne: <kind>: <message>" (with rank and host when the
// job has several ranks) and a non-zero exit (2 for bad input). Errors that every rank meets
// identically (config, CLI) end each rank normally; an error on some ranks only calls
// MPI_Abort so that no rank is left waiting in a collective.
#include <dlfcn.h>
#include <malloc.h>
#include <mpi.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>

#include "dne/cli/commands.hpp"
#include "dne/data/dicom.hpp"
#include "dne/cli/data_command.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/host.hpp"
#include "dne/core/text.hpp"
#include "dne/store/result_file.hpp"

namespace {

const char* kUsage =
    "usage: dne <command> [options]\n"
    "commands:\n"
    "  run      run the experiment(s) a TOML config defines (see `dne run --help`)\n"
    "  pretrain masked-autoencoder pretraining of the built-in ViT -> an FM file (fm.weights)\n"
    "  phantom  write the synthetic chest X-ray data set as PNG + manifest.csv\n"
    "  inspect  print what a result file holds\n"
    "  bench    measure FM throughput, GEMM rate and DNE step cost on this machine\n"
    "  data     data-set utilities: `dne data import` writes a manifest from CheXpert, MIMIC-CXR or NIH\n"
    "  serve    serve an FM over the Open Inference Protocol (for fm.kind = \"remote\" and other clients)\n"
    "Every command takes --help.\n";

/// MPI with MPI_THREAD_MULTIPLE: the sweep's coordinator thread on rank 0 talks MPI while the
/// rank's main thread computes (sweep/scheduler.hpp).
struct MpiSession {
  MpiSession(int* argc, char*** argv) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

/// glibc serves blocks above a dynamic threshold (128 KiB at start, never above 32 MiB) with
/// mmap and trims the heap above 128 KiB of free top, so every such block is a fresh mapping
/// whose pages fault in and are zeroed, and is unmapped again when freed. Two measured costs
/// (docs/performance.md): a fresh rank decoding 320x390 JPEGs ran 4x slower than one whose
/// threshold had adapted; and a tiny ViT at 224x224, batch 100 (attention scores of 31 MB,
/// patch and MLP buffers of 20-80 MB per call), embedded 186 images/s instead of 2,000 (0.03x
/// of the GEMM rate instead of 0.45x). Fixed thresholds keep blocks up to 256 MiB in the heap
/// and return memory to the system once 512 MiB are free at its top, so a forward pass reuses
/// the previous one's pages. Glibc only; a process-wide allocator setting, made once here.
void keep_working_buffers_in_the_heap() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
}

/// OpenBLAS picks its thread count from the cores it can see, which depends on how mpirun binds
/// the rank, and a different count changes the bits of some products. Every rank therefore runs
/// BLAS on one thread; Torch's own intra-op threads (run.threads) parallelise the rest. Looked up
/// at run time so that any BLAS implementation links.
void pin_blas_to_one_thread() {
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
}

}  // namespace

int main(int argc, char** argv) {
  dne::store::skip_hdf5_cleanup_at_exit();  // before any HDF5 call (see result_file.hpp)
  MpiSession mpi(&argc, &argv);
  pin_blas_to_one_thread();
  keep_working_buffers_in_the_heap();
  dne::data::silence_dicom_library_messages();  // DICOM problems surface as one DataError line
  dne::cli::ProcessInfo process;
  MPI_Comm_rank(MPI_COMM_WORLD, &process.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &process.world_size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, process.rank, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &process.local_size);
  MPI_Comm_rank(local, &process.local_rank);
  MPI_Comm_free(&local);

  const std::map<std::string, std::function<int(const std::vector<std::string>&, const dne::cli::ProcessInfo&)>>
      commands = {{"run", dne::cli::command_run},
                  {"pretrain", dne::cli::command_pretrain},
                  {"phantom", dne::cli::command_phantom},
                  {"inspect", dne::cli::command_inspect},
                  {"bench", dne::cli::command_bench},
                  {"data", dne::cli::command_data},
                  {"serve", dne::cli::command_serve}};

  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    if (process.rank == 0) (argc < 2 ? std::cerr : std::cout) << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    if (process.rank == 0)
      std::cerr << "dne: unknown command '" << argv[1] << "' (try `dne --help`)" << std::endl;
    return 2;
  }
  const std::vector<std::string> args(argv + 2, argv + argc);
  const std::string where = process.world_size > 1
                                ? " [rank " + std::to_string(process.rank) + " on " + dne::host_name() + "]"
                                : "";
  try {
    return it->second(args, process);
  } catch (const dne::PreflightError& e) {
    // Met by every rank alike before any collective work: one line, every rank exits normally.
    if (process.rank == 0) std::cerr << "dne: " << e.kind() << ": " << dne::valid_utf8(e.what()) << std::endl;
    return e.exit_code();
  } catch (const dne::ConfigError& e) {
    // Config errors are found identically on every rank before any work: exit cleanly.
    if (process.rank == 0) std::cerr << "dne: " << e.kind() << ": " << dne::valid_utf8(e.what()) << std::endl;
    return e.exit_code();
  } catch (const dne::Error& e) {
    std::cerr << "dne: " << e.kind() << where << ": " << dne::valid_utf8(e.what()) << std::endl;
    if (process.world_size > 1) MPI_Abort(MPI_COMM_WORLD, e.exit_code());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "dne: internal error" << where << ": " << dne::valid_utf8(e.what()) << std::endl;
    if (process.world_size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}
