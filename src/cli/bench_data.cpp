// `dne bench --data`: a manifest's images from files to the run's image cache and into the FM,
// as stages timed against the floor of reading the files (see bench_modes.hpp).
#include <mpi.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "dne/cli/bench_modes.hpp"
#include "dne/comm/group_embedding.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/core/system_memory.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/manifest.hpp"
#include "dne/editing/image_rows.hpp"
#include "dne/experiment/component_options.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/sweep/scheduler.hpp"

namespace dne::cli {
namespace {

using Clock = std::chrono::steady_clock;

/// Images each rank embeds in the data mode's embedding stage (the first of the train split).
constexpr std::int64_t kBenchEmbedRows = 1000;

/// What every stage of the data mode works on.
struct DataBench {
  const config::ExperimentConfig& c;
  const ProcessInfo& process;
  int repeats = 1;
  data::ManifestOptions selection;
  data::Manifest manifest;
  data::DecodeOptions decode;      // one thread
  std::vector<std::size_t> all;    // every row of the manifest
  std::filesystem::path dir;       // rank 0's temporary folder
  std::string cache;               // the cache file in it

  void barrier() const { (void)sweep::min_location_politely(MPI_COMM_WORLD, 0); }
};

/// Rank 0 alone: the floor, one-process decoding, the cache written and read.
struct RankZeroStages {
  double read_s = 0, decode1_s = 0, decode_n_s = 0, write_s = 0, read_cache_s = 0, cache_mb = 0;
  int bits = 8;
  std::uintmax_t bytes = 0;
};

RankZeroStages bench_rank_zero(const DataBench& b, int cores) {
  RankZeroStages r;
  if (b.process.rank != 0) return r;
  const auto& d = b.decode;
  for (const auto& row : b.manifest.rows) r.bytes += std::filesystem::file_size(row.path);
  r.read_s = median_seconds(b.repeats, [&] { (void)data::data_content_hash(b.manifest, b.selection, FileFingerprint::kContent, 1); });
  r.decode1_s = median_seconds(b.repeats, [&] { (void)data::decode_manifest(b.manifest, d); });
  auto dn = d;
  dn.threads = cores;
  data::Dataset decoded;
  r.decode_n_s = median_seconds(b.repeats, [&] { decoded = data::decode_manifest(b.manifest, dn); });
  r.bits = data::manifest_sample_bits(b.manifest, b.all, cores);
  std::filesystem::create_directories(b.dir);
  r.write_s = median_seconds(b.repeats, [&] { data::write_image_cache(b.cache, decoded, "bench", d.image_size, b.c.data.resize, r.bits); });
  r.cache_mb = static_cast<double>(std::filesystem::file_size(b.cache)) / 1e6;
  r.read_cache_s = median_seconds(b.repeats, [&] { (void)data::read_image_cache(b.cache, "bench", d.image_size, b.c.data.resize); });
  std::filesystem::remove(b.cache);
  return r;
}

/// The job's path on p ranks, one thread each, into one cache file (kept when `keep`): seconds.
double job_decode(const DataBench& b, int p, bool keep) {
  std::unique_ptr<data::ImageCacheFile> file;
  std::string layout;
  const auto& d = b.decode;
  if (b.process.rank == 0) {
    std::vector<data::RowSlot> slots;
    file = std::make_unique<data::ImageCacheFile>(b.cache, data::split_rows(b.manifest, d.image_size, slots), "bench",
                                                  d.image_size, b.c.data.resize, 8);
    layout = file->layout().to_text();
  }
  sweep::broadcast_politely(MPI_COMM_WORLD, layout, 0);
  b.barrier();
  const auto t = Clock::now();
  if (b.process.rank < p) {
    std::vector<std::size_t> mine;
    for (std::size_t i = static_cast<std::size_t>(b.process.rank); i < b.all.size(); i += static_cast<std::size_t>(p)) mine.push_back(i);
    data::fill_image_cache(b.manifest, mine, d, data::ImageCacheLayout::from_text(layout));
  }
  b.barrier();
  const double seconds = std::chrono::duration<double>(Clock::now() - t).count();
  if (file) {
    file->commit();
    if (!keep) std::filesystem::remove(b.cache);
  }
  b.barrier();
  return seconds;
}

/// Every rank maps the cache and reads every image of it: what it holds privately, what the
/// ranks share (one copy per node), and how fast images come out of the map.
struct MapStage {
  double read_s = 0.0;
  std::vector<double> residency;  // rss, shared, private, pss per rank (rank 0)
  double map_bytes = 0.0;
};

MapStage bench_map(const DataBench& b) {
  MapStage m;
  m.residency.assign(4 * static_cast<std::size_t>(b.process.world_size), 0.0);
  const data::ImageCacheMap map(b.cache, "bench", b.decode.image_size, b.c.data.resize);
  m.map_bytes = static_cast<double>(map.mapped_bytes());
  std::vector<float> image(static_cast<std::size_t>(b.decode.image_size * b.decode.image_size));
  double checksum = 0.0;
  const auto t = Clock::now();
  for (const auto split : {data::Split::kTrain, data::Split::kVal, data::Split::kTest})
    for (std::int64_t i = 0; i < map.rows(split); ++i) {
      map.read(split, i, image.data());
      checksum += image[image.size() / 2];
    }
  m.read_s = std::chrono::duration<double>(Clock::now() - t).count();
  if (!std::isfinite(checksum)) throw DataError("bench: non-finite pixels in " + b.cache);
  b.barrier();  // every rank has touched every page before anyone looks
  const auto r = mapping_residency(b.cache);
  const double mine[4] = {r.rss, r.shared, r.private_bytes, r.pss};
  MPI_Gather(mine, 4, MPI_DOUBLE, m.residency.data(), 4, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  b.barrier();
  return m;
}

/// Embedding throughput: the configured FM on the train split's images, streamed from the map
/// (dequantized batch by batch, as experiments read a manifest) against the same images held as
/// one float32 tensor (the old path's copy), every rank at once on its own thread(s). Both give
/// the same embeddings, bit for bit (checked). Seconds of the slowest rank.
struct EmbedStage {
  std::int64_t rows = 0;
  double map_s = 0.0, memory_s = 0.0, batch_map_s = 0.0;
};

EmbedStage bench_embedding(const DataBench& b) {
  EmbedStage e;
  const auto& c = b.c;
  const auto map = std::make_shared<const data::ImageCacheMap>(b.cache, "bench", b.decode.image_size, c.data.resize);
  e.rows = std::min<std::int64_t>(kBenchEmbedRows, map->rows(data::Split::kTrain));
  if (e.rows == 0) return e;
  std::vector<std::int64_t> rows(static_cast<std::size_t>(e.rows));
  for (std::int64_t i = 0; i < e.rows; ++i) rows[static_cast<std::size_t>(i)] = i;
  const editing::ImageRows from_map(map, data::Split::kTrain, rows);
  const editing::ImageRows in_memory(from_map.slice(0, e.rows));  // (n, 1, S, S) float32
  auto model = fm::make_model(c.fm, b.decode.image_size, 0);
  auto alone = comm::make_self_communicator();
  const auto embed_all = [&](const editing::ImageRows& x) {
    return comm::embed_over_group(
        x.size(), c.fm.batch_size, model->embed_dim(), model->parallelism(),
        [&](std::int64_t begin, std::int64_t end) { return x.slice(begin, end); },
        [&](const std::vector<torch::Tensor>& batches) { return model->embed_each(batches); }, *alone);
  };
  // Interleaved (memory, map, memory, map, ...), medians of each: the machine's drift over the
  // stage hits both alike.
  torch::Tensor z_memory = embed_all(in_memory), z_map = embed_all(from_map);  // warm-up
  const auto timed = [&](const editing::ImageRows& x, torch::Tensor& z) {
    b.barrier();
    const auto t = Clock::now();
    z = embed_all(x);
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  std::vector<double> memory_s, map_s;
  for (int r = 0; r < std::max(1, b.repeats); ++r) {
    memory_s.push_back(timed(in_memory, z_memory));
    map_s.push_back(timed(from_map, z_map));
  }
  // The map's own share: the same batches only made (dequantized into a fresh float32 tensor).
  e.batch_map_s = median_seconds(b.repeats, [&] {
    for (std::int64_t k = 0; k < e.rows; k += c.fm.batch_size) (void)from_map.slice(k, std::min(e.rows, k + c.fm.batch_size));
  });
  std::sort(memory_s.begin(), memory_s.end());
  std::sort(map_s.begin(), map_s.end());
  e.memory_s = memory_s[memory_s.size() / 2];
  e.map_s = map_s[map_s.size() / 2];
  if (!torch::equal(z_memory, z_map)) throw DataError("bench: embeddings from the map differ from the in-memory copy's");
  double slowest[3] = {e.memory_s, e.map_s, e.batch_map_s};
  MPI_Allreduce(MPI_IN_PLACE, slowest, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  e.memory_s = slowest[0];
  e.map_s = slowest[1];
  e.batch_map_s = slowest[2];
  return e;
}

/// Rank 0's table of the data mode.
void print_data_bench(const DataBench& b, const std::string& csv, int cores, const RankZeroStages& r, double job1_s,
                      double job_all_s, const MapStage& m, const EmbedStage& e, double peak_mb) {
  const auto& c = b.c;
  const auto& d = b.decode;
  const int ranks = b.process.world_size;
  const auto n = static_cast<double>(b.manifest.rows.size());
  const double s2 = static_cast<double>(d.image_size * d.image_size);
  std::printf("dne bench --data %s: %.0f images, %.1f MB of files (%.0f kB each), decoded to %lldx%lld (%s), "
              "median of %d, %d rank(s) in the job\n", csv.c_str(), n, static_cast<double>(r.bytes) / 1e6,
              static_cast<double>(r.bytes) / n / 1e3, static_cast<long long>(d.image_size), static_cast<long long>(d.image_size),
              c.data.resize.c_str(), b.repeats, ranks);
  std::printf("%-52s %12s %10s\n", "stage", "images/s", "x floor");
  const auto row = [&](const std::string& name, double seconds) {
    std::printf("%-52s %12.0f %10.2f\n", name.c_str(), n / seconds, r.read_s / seconds);
  };
  row("floor: read file bytes + CRC-32 (1 thread)", r.read_s);
  row("decode + resize, 1 process x 1 thread", r.decode1_s);
  row("decode + resize, 1 process x " + std::to_string(cores) + " threads", r.decode_n_s);
  row("job: decode into the cache, 1 rank x 1 thread", job1_s);
  row("job: decode into the cache, " + std::to_string(ranks) + " rank(s) x 1 thread", job_all_s);
  row("image cache: write (once per run)", r.write_s);
  row("image cache: read (once per experiment)", r.read_cache_s);
  row("image cache: every image from the map (rank 0)", m.read_s);
  std::printf("decode speed-up: %d threads in one process %.2fx; %d ranks of the job %.2fx (1 thread each)\n", cores,
              r.decode1_s / r.decode_n_s, ranks, job1_s / job_all_s);
  std::printf("cache file %.1f MB: %.0f bytes per image = %d-bit samples x %lld^2 (format 1 stored 4 S^2 = %.0f)\n",
              r.cache_mb, r.cache_mb * 1e6 / n, r.bits, static_cast<long long>(d.image_size), 4.0 * s2);
  for (int k = 0; k < ranks; ++k) {
    const double* v = m.residency.data() + 4 * k;
    std::printf("rank %d: cache mapping rss %.1f MB, shared %.1f MB, private %.1f MB, pss %.1f MB of a %.1f MB mapping\n", k,
                v[0] / 1e6, v[1] / 1e6, v[2] / 1e6, v[3] / 1e6, m.map_bytes / 1e6);
  }
  if (e.rows > 0)
    std::printf("embedding (fm.kind=%s, batch %lld): %lld train images on each of %d rank(s) at once, slowest rank: "
                "%.0f images/s from a float32 copy in memory, %.0f images/s from the map (%.2fx), same bits; "
                "making the batches from the map alone: %.0f images/s, %.1f%% of the in-memory embedding time\n",
                c.fm.kind.c_str(), static_cast<long long>(c.fm.batch_size), static_cast<long long>(e.rows), ranks,
                static_cast<double>(e.rows) / e.memory_s, static_cast<double>(e.rows) / e.map_s, e.memory_s / e.map_s,
                static_cast<double>(e.rows) / e.batch_map_s, 100.0 * e.batch_map_s / e.memory_s);
  std::printf("10^5 images of 224x224: %.1f GB of 8-bit samples (float32: %.1f GB); peak RSS of the largest rank here %.0f MB\n",
              224.0 * 224.0 * 1e5 / 1e9, 4.0 * 224.0 * 224.0 * 1e5 / 1e9, peak_mb);
}

}  // namespace

int bench_decoding(const config::ExperimentConfig& c, const std::string& csv, int repeats, const ProcessInfo& process) {
  DataBench b{c, process, repeats, experiment::manifest_options(c), {}, experiment::decode_options(c, 1), {}, {}, {}};
  b.manifest = data::read_manifest(csv, b.selection);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  b.all.resize(b.manifest.rows.size());
  for (std::size_t i = 0; i < b.all.size(); ++i) b.all[i] = i;
  b.dir = std::filesystem::temp_directory_path() / ("dne-bench-cache-" + std::to_string(::getpid()));
  std::string dir_text = b.dir.string();
  sweep::broadcast_politely(MPI_COMM_WORLD, dir_text, 0);  // rank 0's folder, for everyone
  b.cache = (std::filesystem::path(dir_text) / "cache.h5").string();

  const auto rank_zero = bench_rank_zero(b, cores);
  b.barrier();
  std::vector<double> job1, job_all;  // the job's path on 1 rank, then on every rank
  for (int r = 0; r < std::max(1, repeats); ++r) {
    job1.push_back(job_decode(b, 1, false));
    job_all.push_back(job_decode(b, process.world_size, r + 1 == std::max(1, repeats)));  // the last one stays
  }
  const auto map = bench_map(b);
  const auto embedding = bench_embedding(b);
  std::sort(job1.begin(), job1.end());
  std::sort(job_all.begin(), job_all.end());
  double peak_mb = peak_resident_bytes() / 1e6;
  double peak_max = peak_mb;
  MPI_Allreduce(&peak_mb, &peak_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (process.rank == 0) std::filesystem::remove_all(b.dir);
  if (process.rank != 0) return 0;
  print_data_bench(b, csv, cores, rank_zero, job1[job1.size() / 2], job_all[job_all.size() / 2], map, embedding, peak_max);
  return 0;
}

}  // namespace dne::cli
