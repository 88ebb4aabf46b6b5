// The run/ module (what happens before and around the experiments of a `dne run`) under
// mpiexec -n 1 and -n 2: rank 0's work shared with every rank, an error on rank 0 reaching every
// rank as the same PreflightError, Torch threads per rank, the deprecation lines, the output
// directory checks and lock, the memory check, FM file hashes, the manifest check and the
// image cache every rank decodes into, the device agreed on a CPU machine, and run_job on a
// tiny config (a dry run, then a real one whose files are read back).
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dne/comm/mpi_communicator.hpp"
#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/host.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/image_io.hpp"
#include "dne/fm/fm_file.hpp"
#include "dne/fm/vit_encoder.hpp"
#include "dne/pretrain/trainer.hpp"
#include "dne/run/device_agreement.hpp"
#include "dne/run/image_cache_build.hpp"
#include "dne/run/preflight.hpp"
#include "dne/run/process.hpp"
#include "dne/run/run_job.hpp"
#include "dne/store/result_file.hpp"
#include "dne/sweep/scheduler.hpp"
#include "mpi_test_main.hpp"

namespace {

namespace fs = std::filesystem;
using dne::run::ProcessInfo;

ProcessInfo this_process() {
  ProcessInfo p;
  p.rank = dne_test::world_rank();
  p.world_size = dne_test::world_size();
  p.local_size = p.world_size;  // one node
  p.local_rank = p.rank;
  return p;
}

/// A folder every rank names alike (rank 0's pid), made fresh by rank 0 before any rank uses it.
class SharedDir : public ::testing::Test {
 protected:
  void SetUp() override {
    long pid = dne_test::world_rank() == 0 ? static_cast<long>(::getpid()) : 0;
    MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("dne_test_run_" + std::to_string(pid) + "_" + info->name());
    if (dne_test::world_rank() == 0) {
      fs::remove_all(dir_);
      fs::create_directories(dir_);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  void TearDown() override {
    MPI_Barrier(MPI_COMM_WORLD);
    std::error_code ec;
    if (dne_test::world_rank() == 0) fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  fs::path dir_;
};

/// Runs `fn` and returns the PreflightError's message and exit code ("" when nothing was thrown).
template <class Fn>
std::pair<std::string, int> preflight_error(Fn fn) {
  try {
    fn();
  } catch (const dne::PreflightError& e) {
    return {e.what(), e.exit_code()};
  }
  return {"", 0};
}

TEST(OnRank0Shared, RankZerosTextReachesEveryRank) {
  const auto p = this_process();
  const std::string text = dne::run::on_rank0_shared(p, "test", [&] { return "from rank " + std::to_string(p.rank); });
  EXPECT_EQ(text, "from rank 0");
}

TEST(OnRank0Shared, AnErrorOnRankZeroIsTheSameLineAndCodeOnEveryRank) {
  const auto p = this_process();
  const auto [message, code] = preflight_error([&] {
    dne::run::on_rank0_shared(p, "test", []() -> std::string { throw dne::DataError("a.csv: line 3: no label"); });
  });
  EXPECT_NE(message.find("a.csv: line 3: no label"), std::string::npos) << message;
  EXPECT_EQ(code, dne::DataError("x").exit_code());
  const auto [other, other_code] = preflight_error([&] {
    dne::run::on_rank0_shared(p, "reading the manifest", []() -> std::string { throw std::runtime_error("boom"); });
  });
  EXPECT_NE(other.find("reading the manifest"), std::string::npos) << other;  // the context prefixes it
  EXPECT_NE(other.find("boom"), std::string::npos) << other;
  EXPECT_NE(other_code, 0);
}

TEST(ChooseThreads, AsRequestedOrTheCoresSharedByTheNodesRanks) {
  ProcessInfo p;
  p.local_size = 2;
  EXPECT_EQ(dne::run::choose_threads(3, p), 3);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(dne::run::choose_threads(0, p), std::max(1, cores / 2));
  p.local_size = 1000;
  EXPECT_EQ(dne::run::choose_threads(0, p), 1);  // never 0
}

TEST(SayDeprecatedKeys, OneLinePerFormerNameOnRankZeroOnly) {
  const auto source = dne::config::parse_text("[gezo]\ncandidates = 4\nsigma = 0.1\n", "t.toml");
  ::testing::internal::CaptureStdout();
  dne::run::say_deprecated_keys(source, this_process());
  const std::string out = ::testing::internal::GetCapturedStdout();
  if (dne_test::world_rank() == 0) {
    EXPECT_NE(out.find("# deprecated: gezo.candidates is now zo.candidates (the same key; experiment ids do not change)\n"),
              std::string::npos) << out;
    EXPECT_NE(out.find("gezo.sigma is now zo.sigma"), std::string::npos) << out;
  } else {
    EXPECT_EQ(out, "");
  }
}

TEST_F(SharedDir, OutputDirectoryCheckedAndLockedOncePerRun) {
  const auto p = this_process();
  dne::run::require_writable_folder(path("mine/" + std::to_string(p.rank)), "the cache");
  EXPECT_TRUE(fs::is_directory(path("mine/" + std::to_string(p.rank))));
  if (p.rank == 0) std::ofstream(path("file")) << "x";
  MPI_Barrier(MPI_COMM_WORLD);
  try {
    dne::run::require_writable_folder(path("file/sub"), "the cache");
    ADD_FAILURE() << "a folder under a file was accepted";
  } catch (const dne::StoreError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("the cache", 0), 0u) << e.what();
  }

  dne::run::prepare_output_dir(path("run"));
  EXPECT_TRUE(fs::is_directory(path("run/experiments")));
  MPI_Barrier(MPI_COMM_WORLD);
  if (p.rank == 0)  // a dead writer's temporary file (no such pid on this host)
    std::ofstream(path("run/experiments/a.h5.tmp." + dne::host_name() + ".999999999")) << "half";
  MPI_Barrier(MPI_COMM_WORLD);
  std::optional<dne::sweep::RunDirectoryLock> lock;
  dne::run::lock_output_dir(lock, path("run"), false, p);
  EXPECT_EQ(lock.has_value(), p.rank == 0);  // world rank 0 holds it
  EXPECT_FALSE(fs::exists(path("run/experiments/a.h5.tmp." + dne::host_name() + ".999999999")));
  std::optional<dne::sweep::RunDirectoryLock> second;
  const auto [message, code] = preflight_error([&] { dne::run::lock_output_dir(second, path("run"), false, p); });
  EXPECT_NE(message.find(path("run")), std::string::npos) << message;  // every rank: the same line
  EXPECT_EQ(code, 2);
}

TEST(RequireMemory, AnExperimentLargerThanTheNodeEndsTheJobBeforeItStarts) {
  const auto p = this_process();
  dne::config::ExperimentConfig small;
  small.data.n_train = 40;
  small.data.n_test = 20;
  EXPECT_NO_THROW(dne::run::require_memory({small}, p));
  auto huge = small;
  huge.data.n_train = 2'000'000'000;  // 2e9 images of 64 x 64: terabytes
  huge.data.image_size = 64;
  const auto [message, code] = preflight_error([&] { dne::run::require_memory({small, huge}, p); });
  EXPECT_NE(message.find("data.n_train = 2000000000"), std::string::npos) << message;
  EXPECT_NE(message.find("available per rank"), std::string::npos) << message;
  EXPECT_EQ(code, 2);
}

/// A one-block ViT of width 8 on 16 x 16 images.
dne::config::ExperimentConfig tiny_vit_config() {
  dne::config::ExperimentConfig c;
  c.data.image_size = 16;
  c.fm.kind = "vit";
  c.fm.embed_dim = 8;
  c.fm.depth = 1;
  c.fm.heads = 2;
  return c;
}

TEST_F(SharedDir, FmFileHashesEnterTheIdsAndABadFileIsOneLine) {
  const auto a = dne::fm::ViTArchitecture::from_config(tiny_vit_config().fm, 16);
  dne::fm::ViTEncoder enc(a, "mean", 5);
  if (dne_test::world_rank() == 0) dne::fm::write_fm_file(path("w.h5"), *enc.module(), {});
  MPI_Barrier(MPI_COMM_WORLD);
  auto c = tiny_vit_config();
  c.fm.weights = path("w.h5");
  const std::string before = c.id();
  std::vector<dne::config::ExperimentConfig> experiments{c};
  dne::run::attach_fm_hashes(experiments);
  EXPECT_EQ(experiments[0].fm_hash, dne::fm::content_hash(*enc.module()));
  EXPECT_NE(experiments[0].id(), before);
  experiments[0].fm.weights = path("missing.h5");
  const auto [message, code] = preflight_error([&] { dne::run::attach_fm_hashes(experiments); });
  EXPECT_NE(message.find("missing.h5"), std::string::npos) << message;
  EXPECT_EQ(code, 2);
}

TEST_F(SharedDir, ManifestCheckedHashedAndDecodedIntoTheCacheByEveryRank) {
  const auto p = this_process();
  if (p.rank == 0) {
    std::string csv = "path,split,sex,label\n";
    for (int i = 0; i < 6; ++i) {
      std::vector<float> px(20 * 20);
      for (std::size_t j = 0; j < px.size(); ++j) px[j] = static_cast<float>(j % 20) / 40.0f + static_cast<float>(i) / 16.0f;
      dne::data::write_grayscale_png(path("i" + std::to_string(i) + ".png"), px.data(), 20, 20);
      csv += "i" + std::to_string(i) + ".png," + (i < 4 ? "train" : "test") + "," + (i % 2 ? "F" : "M") + "," +
             std::to_string(i / 2 % 2) + "\n";
    }
    std::ofstream(path("m.csv")) << csv;
  }
  MPI_Barrier(MPI_COMM_WORLD);
  dne::config::ExperimentConfig c;
  c.data.source = "manifest";
  c.data.manifest = path("m.csv");
  c.data.image_size = 16;
  std::vector<dne::config::ExperimentConfig> experiments{c};
  dne::run::prepare_output_dir(path("run"));
  dne::run::prepare_data(experiments, path("run"), p, /*decode=*/false, /*quiet=*/true);
  EXPECT_EQ(experiments[0].data_hash.size(), 16u);  // hashed into the id
  EXPECT_EQ(experiments[0].data_rows_train, 4);
  EXPECT_EQ(experiments[0].data_rows_test, 2);
  const std::string cache = dne::data::image_cache_path(path("run"), experiments[0].data_hash, 16, "stretch");
  EXPECT_FALSE(fs::exists(cache));
  dne::run::build_image_caches(experiments, path("run"), p, /*quiet=*/true);
  EXPECT_TRUE(fs::exists(cache)) << cache;

  experiments[0].data.manifest = path("none.csv");
  const auto [message, code] = preflight_error([&] { dne::run::prepare_data(experiments, path("run"), p, false, true); });
  EXPECT_NE(message.find("none.csv"), std::string::npos) << message;
  EXPECT_EQ(code, 2);
}

TEST(AgreedDeviceChoice, TheGpuWhenEveryRankSeesOneElseTheCpuAndAskingForWhatIsMissingIsOneLine) {
  const auto p = this_process();
  dne::config::RunConfig run;  // run.device = "auto"
  dne::config::ExperimentConfig c;
  int gpu = torch::cuda::is_available() ? 1 : 0, every = 0;
  MPI_Allreduce(&gpu, &every, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  const auto choice = dne::run::agreed_device_choice(run, {c}, p);
  EXPECT_EQ(choice.cuda(), every == 1);
  if (every == 0) {  // a CPU machine (this one): the CPU, MPI sums; cuda asked for is refused everywhere
    EXPECT_EQ(choice.backend(), "mpi");
    EXPECT_EQ(choice.description(), "cpu");
    run.device = "cuda";
    const auto [message, code] = preflight_error([&] { dne::run::agreed_device_choice(run, {c}, p); });
    EXPECT_NE(message.find("run.device"), std::string::npos) << message;
    EXPECT_EQ(code, 2);
  }
  run.device = "cpu";  // asked for: the CPU wherever
  EXPECT_FALSE(dne::run::agreed_device_choice(run, {c}, p).cuda());
}

TEST_F(SharedDir, RunJobDryRunWritesNothingAndARealRunItsFiles) {
  const auto p = this_process();
  const std::string text = "[data]\nimage_size = 32\nn_train = 40\nn_test = 20\n[fm]\nwidth = 4\nembed_dim = 8\n"
                           "[dne]\nmethod = \"none\"\n[output]\ndir = \"" + path("run") + "\"\n";
  dne::run::RunRequest request;
  request.source = dne::config::parse_text(text, "tiny.toml");
  request.quiet = true;
  request.dry_run = true;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(dne::run::run_job(request, p), 0);
  ::testing::internal::GetCapturedStdout();
  EXPECT_FALSE(fs::exists(path("run/index.h5")));
  request.dry_run = false;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(dne::run::run_job(request, p), 0);
  ::testing::internal::GetCapturedStdout();
  MPI_Barrier(MPI_COMM_WORLD);
  ASSERT_TRUE(fs::exists(path("run/index.h5")));
  int files = 0;
  for (const auto& e : fs::directory_iterator(path("run/experiments"))) {
    ++files;
    const dne::store::H5Reader r(e.path().string());
    EXPECT_EQ(r.string_attribute("/", "method"), "none");
    EXPECT_EQ(r.int_attribute("/provenance", "world_size"), p.world_size);
  }
  EXPECT_EQ(files, 1);
}

TEST(PoliteCollectives, BroadcastAndMinimumLocation) {
  const int rank = dne_test::world_rank(), size = dne_test::world_size();
  std::string text = rank == 0 ? std::string(5000, 'x') + " from rank 0" : "ignored";
  dne::sweep::broadcast_politely(MPI_COMM_WORLD, text, 0);
  EXPECT_EQ(text, std::string(5000, 'x') + " from rank 0");
  // rank r holds 10 - r: the smallest is the last rank's
  EXPECT_EQ(dne::sweep::min_location_politely(MPI_COMM_WORLD, 10 - rank), (std::pair<long, int>{10 - (size - 1), size - 1}));
  // a tie: the lowest rank holding it
  EXPECT_EQ(dne::sweep::min_location_politely(MPI_COMM_WORLD, 7), (std::pair<long, int>{7, 0}));
}

TEST_F(SharedDir, PretrainingGivesTheSameBitsOnTheGroupAsOnOneRankAndIsThenUpToDate) {
  auto c = tiny_vit_config();
  c.pretrain.steps = 3;
  c.pretrain.batch_size = 4;
  c.pretrain.micro_batches = 2;
  c.pretrain.warmup_steps = 1;
  c.pretrain.checkpoint_every = 2;
  c.pretrain.decoder_width = 8;
  c.pretrain.decoder_depth = 1;
  c.pretrain.decoder_heads = 2;
  const auto images = torch::rand({8, 1, 16, 16}, torch::TensorOptions().dtype(torch::kFloat32));
  // every rank the same images: rank 0's
  auto shared = images.contiguous();
  MPI_Bcast(shared.data_ptr<float>(), static_cast<int>(shared.numel()), MPI_FLOAT, 0, MPI_COMM_WORLD);
  dne::pretrain::PretrainIo io;
  io.out_path = path("group.h5");
  io.data_description = "random test images";
  auto world = dne::comm::make_mpi_communicator(MPI_COMM_WORLD);
  const dne::pretrain::PretrainSummary group = dne::pretrain::run_pretraining(c, shared, *world, io);
  EXPECT_FALSE(group.up_to_date);
  EXPECT_EQ(group.steps, 3);
  EXPECT_EQ(dne::pretrain::checkpoint_path(io.out_path), io.out_path + ".ckpt");
  MPI_Barrier(MPI_COMM_WORLD);
  const auto file = dne::fm::read_fm_file(io.out_path);
  EXPECT_EQ(dne::store::H5Reader(io.out_path).string_attribute("/provenance", "pretrain_hash"), dne::pretrain::pretrain_hash(c));
  if (dne_test::world_rank() == 0) {  // the same config on one rank alone: the same weights
    auto alone = dne::comm::make_self_communicator();
    auto io_alone = io;
    io_alone.out_path = path("alone.h5");
    dne::pretrain::run_pretraining(c, shared, *alone, io_alone);
    EXPECT_EQ(dne::fm::read_fm_file(io_alone.out_path).hash, file.hash);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const auto again = dne::pretrain::run_pretraining(c, shared, *world, io);  // the file holds this config's result
  EXPECT_TRUE(again.up_to_date);
  auto other = c;
  other.pretrain.steps = 4;
  EXPECT_NE(dne::pretrain::pretrain_hash(other), dne::pretrain::pretrain_hash(c));
}

}  // namespace

int main(int argc, char** argv) { return dne_test::run_mpi_tests(argc, argv, "test_run"); }
