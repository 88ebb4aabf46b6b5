// The run's image caches decoded by all ranks of the job (see image_cache_build.hpp).
#include "dne/run/image_cache_build.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include "dne/core/errors.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/manifest.hpp"
#include "dne/experiment/component_options.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/sweep/scheduler.hpp"

namespace dne::run {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Rank 0's progress line every 10 s, from whichever decoding thread passes the mark.
class DecodeProgress {
 public:
  DecodeProgress(std::string what, std::int64_t mine, std::int64_t total, int ranks)
      : what_(std::move(what)), mine_(mine), total_(total), ranks_(ranks) {}
  void operator()(std::int64_t done) {
    std::lock_guard<std::mutex> lock(mutex_);
    const double s = seconds_since(start_);
    if (s < next_) return;
    next_ = s + 10.0;
    const double rate = static_cast<double>(done) / s;  // this rank's images/s
    const double eta = rate > 0.0 ? static_cast<double>(mine_ - done) / rate : 0.0;
    std::printf("# data: decoding %s: rank 0 at %lld of its %lld images, %.0f images/s (about %.0f over %d ranks, "
                "%lld images), ETA %.0f s\n",
                what_.c_str(), static_cast<long long>(done), static_cast<long long>(mine_), rate, rate * ranks_, ranks_,
                static_cast<long long>(total_), eta);
    std::fflush(stdout);
  }

 private:
  std::string what_;
  std::int64_t mine_, total_;
  int ranks_;
  std::mutex mutex_;
  Clock::time_point start_ = Clock::now();
  double next_ = 10.0;
};

/// Every rank learns whether any rank failed; if one did, the failure that comes first (a row
/// error: the lowest row; any other error: before every row error, lowest rank first) is thrown
/// on every rank as a PreflightError with its kind and exit code.
void agree_on_failure(const std::exception_ptr& failure) {
  long key = std::numeric_limits<long>::max();
  std::string text;
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const data::RowDecodeError& e) {
      key = static_cast<long>(e.row);
      text = std::to_string(e.exit_code()) + "\n" + e.kind() + "\n" + e.what();
    } catch (const Error& e) {
      key = -1;
      text = std::to_string(e.exit_code()) + "\n" + e.kind() + "\n" + e.what();
    } catch (const std::exception& e) {
      key = -1;
      text = std::string("1\nerror\nwhile decoding the image cache: ") + e.what();
    }
  }
  const auto [least, owner] = sweep::min_location_politely(MPI_COMM_WORLD, key);
  if (least == std::numeric_limits<long>::max()) return;
  sweep::broadcast_politely(MPI_COMM_WORLD, text, owner);
  std::istringstream in(text);
  std::string code, kind;
  std::getline(in, code);
  std::getline(in, kind);
  throw PreflightError(text.substr(static_cast<std::size_t>(in.tellg())), kind, std::stoi(code));
}

/// ResourceError unless the file system of `cache` (its nearest existing folder) has `bytes`
/// available: the samples are written sparse and would otherwise fail late, on some rank.
void require_disk_space(const std::string& cache, double bytes, const std::string& manifest) {
  auto dir = std::filesystem::path(cache).parent_path();
  std::error_code ec;
  while (!dir.empty() && !std::filesystem::exists(dir, ec)) dir = dir.parent_path();
  const auto space = std::filesystem::space(dir.empty() ? std::filesystem::path(".") : dir, ec);
  if (ec) return;  // nothing to compare with: the writes report a full disk
  const double need = bytes * 1.01 + (1 << 20);  // samples + labels, sources, HDF5 metadata
  if (static_cast<double>(space.available) >= need) return;
  std::ostringstream why;
  why << std::fixed << std::setprecision(1) << "data.manifest " << manifest << ": the image cache needs "
      << need / 1e9 << " GB and " << dir.string() << " has " << static_cast<double>(space.available) / 1e9
      << " GB available: use a smaller data.image_size, data.limit_*, or an output directory on a larger file system";
  throw ResourceError(why.str());
}

void build_one(const config::ExperimentConfig& c, const std::string& cache, const ProcessInfo& process, bool quiet) {
  const auto t0 = Clock::now();
  // Every rank reads the manifest rank 0 has checked (the same rows, the same order).
  data::Manifest manifest;
  std::exception_ptr failure;
  try {
    manifest = data::read_manifest(c.data.manifest, experiment::manifest_options(c));
  } catch (...) {
    failure = std::current_exception();
  }
  agree_on_failure(failure);
  std::vector<std::size_t> mine;
  for (std::size_t i = static_cast<std::size_t>(process.rank); i < manifest.rows.size(); i += static_cast<std::size_t>(process.world_size))
    mine.push_back(i);
  const int threads = choose_threads(0, process);
  // The sample width the images need, agreed over the job (8 unless one image is 16-bit).
  const int bits = -static_cast<int>(sweep::min_location_politely(MPI_COMM_WORLD, -data::manifest_sample_bits(manifest, mine, threads)).first);
  std::unique_ptr<data::ImageCacheFile> file;  // rank 0's: removes the temporary file unless committed
  const auto layout = data::ImageCacheLayout::from_text(on_rank0_shared(process, "while creating the image cache", [&] {
    require_disk_space(cache, static_cast<double>(manifest.rows.size()) * static_cast<double>(c.data.image_size) *
                                  static_cast<double>(c.data.image_size) * (bits / 8), c.data.manifest);
    std::vector<data::RowSlot> slots;
    file = std::make_unique<data::ImageCacheFile>(cache, data::split_rows(manifest, c.data.image_size, slots), c.data_hash,
                                                  c.data.image_size, c.data.resize, bits);
    return file->layout().to_text();
  }));
  std::unique_ptr<DecodeProgress> progress;
  if (process.rank == 0 && !quiet)
    progress = std::make_unique<DecodeProgress>(c.data.manifest, static_cast<std::int64_t>(mine.size()),
                                                static_cast<std::int64_t>(manifest.rows.size()), process.world_size);
  try {
    data::fill_image_cache(manifest, mine, experiment::decode_options(c, threads), layout,
                           [&](std::int64_t done) { if (progress) (*progress)(done); });
  } catch (...) {
    failure = std::current_exception();
  }
  agree_on_failure(failure);  // every image is written (and its file closed) by now, or every rank throws
  on_rank0_shared(process, "while publishing the image cache", [&] {
    file->commit();
    return std::string();
  });
  if (process.rank == 0 && !quiet) {
    std::printf("# data: %s: %zu images decoded to %lldx%lld (%s, %d-bit samples) in %.1f s on %d rank(s) x %d thread(s) -> %s\n",
                c.data.manifest.c_str(), manifest.rows.size(), static_cast<long long>(c.data.image_size),
                static_cast<long long>(c.data.image_size), c.data.resize.c_str(), bits, seconds_since(t0), process.world_size,
                threads, cache.c_str());
    std::fflush(stdout);
  }
}

}  // namespace

void build_image_caches(const std::vector<config::ExperimentConfig>& experiments, const std::string& out_dir,
                        const ProcessInfo& process, bool quiet) {
  std::set<std::string> seen;
  for (const auto& c : experiments) {
    if (c.data.source != "manifest") continue;
    const auto cache = data::image_cache_path(out_dir, c.data_hash, c.data.image_size, c.data.resize);
    if (!seen.insert(cache).second) continue;
    // Rank 0's view of the file system decides, for everyone.
    const std::string present = on_rank0_shared(process, "while looking for the image cache", [&] {
      std::error_code ec;
      return std::string(std::filesystem::is_regular_file(cache, ec) ? "yes" : "no");
    });
    if (present == "no") build_one(c, cache, process, quiet);
  }
}

}  // namespace dne::run
