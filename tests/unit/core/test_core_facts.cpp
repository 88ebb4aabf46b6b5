// Facts of core/ checked against independent sources: the host name against gethostname(2), the
// memory figures against /proc read here, the counter stream against Random123's published
// Philox4x32-10 answer, the stop request in a child process (its handlers must not outlive the
// test), and the exit codes and kinds errors.hpp documents.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "dne/core/build_info.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/host.hpp"
#include "dne/core/random.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/core/system_memory.hpp"
#include "test_support.hpp"

namespace {

/// The kB value of the line starting with `key` in a /proc file, in bytes; -1 when absent.
double proc_kib_line(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) {
      std::istringstream rest(line.substr(key.size()));
      double kib = -1.0;
      rest >> kib;
      return kib * 1024.0;
    }
  return -1.0;
}

TEST(Host, NameIsWhatGethostnameSays) {
  char buffer[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(::gethostname(buffer, sizeof buffer), 0);
  EXPECT_EQ(dne::host_name(), std::string(buffer));
  EXPECT_FALSE(dne::host_name().empty());
}

TEST(BuildInfo, CompilerAndCommitArePlausible) {
  const std::string compiler = dne::build_compiler();
  ASSERT_FALSE(compiler.empty());
  // Compiler id and version: a name and at least one digit of a version.
  EXPECT_NE(compiler.find_first_of("0123456789"), std::string::npos) << compiler;
#if defined(__clang__)
  EXPECT_NE(compiler.find("Clang"), std::string::npos) << compiler;
#elif defined(__GNUC__)
  EXPECT_NE(compiler.find("GNU"), std::string::npos) << compiler;
  EXPECT_NE(compiler.find(std::to_string(__GNUC__) + "."), std::string::npos) << compiler;
#endif
  const std::string commit = dne::build_git_commit();
  ASSERT_FALSE(commit.empty());
  EXPECT_EQ(commit.find_first_of(" \n\t"), std::string::npos) << commit;
  // "unknown" outside git; otherwise `git describe`-style: hex digits (a tag may lead), "-dirty" at most once, at the end.
  if (commit != "unknown") {
    const auto dirty = commit.find("-dirty");
    if (dirty != std::string::npos) { EXPECT_EQ(dirty + 6, commit.size()) << commit; }
    const std::string core = commit.substr(0, dirty);
    ASSERT_GE(core.size(), 7u) << commit;
    const std::string tail = core.substr(core.size() - 7);
    EXPECT_EQ(tail.find_first_not_of("0123456789abcdef"), std::string::npos) << commit;
  }
}

TEST(SystemMemory, AvailableMemoryIsMemAvailableOfProcMeminfo) {
  const double before = proc_kib_line("/proc/meminfo", "MemAvailable:");
  const double got = dne::available_memory_bytes();
  const double after = proc_kib_line("/proc/meminfo", "MemAvailable:");
  ASSERT_GT(before, 0.0) << "no MemAvailable in /proc/meminfo";
  // Other processes move it between the reads: within 256 MiB of either reading.
  const double slack = 256.0 * 1024 * 1024;
  EXPECT_GE(got, std::min(before, after) - slack);
  EXPECT_LE(got, std::max(before, after) + slack);
  EXPECT_EQ(std::fmod(got, 1024.0), 0.0);  // whole KiB, as /proc writes them
}

TEST(SystemMemory, PeakResidentIsVmHwmAndCoversTouchedMemory) {
  const double hwm = proc_kib_line("/proc/self/status", "VmHWM:");
  ASSERT_GT(hwm, 0.0);
  const double peak = dne::peak_resident_bytes();
  EXPECT_GE(peak, hwm);
  EXPECT_LE(peak, hwm + 16.0 * 1024 * 1024);
  // Touch 64 MiB: the peak then covers what is resident now, the 64 MiB among it.
  const std::size_t bytes = 64u << 20;
  std::vector<char> block(bytes);
  for (std::size_t i = 0; i < bytes; i += 4096) block[i] = static_cast<char>(i);
  volatile char sink = block[bytes / 2];
  (void)sink;
  const double rss = proc_kib_line("/proc/self/status", "VmRSS:");
  const double later = dne::peak_resident_bytes();
  EXPECT_GE(rss, static_cast<double>(bytes));
  EXPECT_GE(later, rss);
  EXPECT_GE(later, peak);
  EXPECT_NEAR(later, proc_kib_line("/proc/self/status", "VmHWM:"), 4.0 * 1024 * 1024);
}

class MappingResidencyTest : public dne_test::TempDirTest {};

TEST_F(MappingResidencyTest, CountsTheMappingsOfOneFileAndTheirTouchedPages) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t pages = 64;
  write_text("data.bin", std::string(pages * page, 'x'));
  EXPECT_EQ(dne::mapping_residency(path("data.bin")).mappings, 0);  // not mapped
  EXPECT_EQ(dne::mapping_residency(path("none.bin")).mappings, 0);  // no such file
  const int fd = ::open(path("data.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* a = ::mmap(nullptr, pages * page, PROT_READ, MAP_SHARED, fd, 0);
  void* b = ::mmap(nullptr, pages * page, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(a, MAP_FAILED);
  ASSERT_NE(b, MAP_FAILED);
  const dne::MappingResidency untouched = dne::mapping_residency(path("data.bin"));
  EXPECT_EQ(untouched.mappings, 2);
  EXPECT_EQ(untouched.rss, 0.0);  // nothing read yet
  // Touch 3 pages, 16 apart, through the first mapping and 1 through the second (the kernel may
  // map neighbours of a touched page too: at least 4 pages, at most both mappings whole).
  volatile char sum = 0;
  for (std::size_t p : {0u, 16u, 32u}) sum = static_cast<char>(sum + static_cast<const char*>(a)[p * page]);
  sum = static_cast<char>(sum + static_cast<const char*>(b)[48 * page]);
  const dne::MappingResidency r = dne::mapping_residency(path("data.bin"));
  EXPECT_EQ(r.mappings, 2);
  EXPECT_GE(r.rss, 4.0 * static_cast<double>(page));
  EXPECT_LE(r.rss, 2.0 * pages * static_cast<double>(page));
  EXPECT_EQ(std::fmod(r.rss, static_cast<double>(page)), 0.0);
  EXPECT_EQ(r.shared + r.private_bytes, r.rss);
  EXPECT_GT(r.pss, 0.0);
  EXPECT_LE(r.pss, r.rss);
  ::munmap(a, pages * page);
  ::munmap(b, pages * page);
  EXPECT_EQ(dne::mapping_residency(path("data.bin")).mappings, 0);
}

TEST(CounterStream, NextU32ReadsRandom123sPhiloxAnswerThenRefillsFromTheNextCounter) {
  // Random123's known answer for Philox4x32-10, counter 0 and key 0 (kat_vectors): the stream
  // with seed 0 and purpose, step and index 0 reads exactly that block, word by word.
  dne::CounterStream s(0, static_cast<dne::StreamPurpose>(0), 0, 0);
  const std::array<std::uint32_t, 4> kat = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
  for (const auto word : kat) EXPECT_EQ(s.next_u32(), word);
  // The fifth word comes from refill(): the next block, its counter's first word one higher.
  const auto next = dne::philox4x32({1, 0, 0, 0}, {0, 0});
  for (const auto word : next) EXPECT_EQ(s.next_u32(), word);
}

TEST(CounterStream, NextU32AgreesWithUniformAndTheKeyHasAll64SeedBits) {
  // uniform() = ((w0 >> 5) * 2^26 + (w1 >> 6)) / 2^53, from two words of the same stream.
  dne::CounterStream words(42, dne::StreamPurpose::kTest, 3, 9), uniforms(42, dne::StreamPurpose::kTest, 3, 9);
  for (int i = 0; i < 10; ++i) {  // across several refills (two words per uniform)
    const std::uint64_t hi = words.next_u32() >> 5, lo = words.next_u32() >> 6;
    EXPECT_EQ(uniforms.uniform(), static_cast<double>((hi << 26) | lo) / 9007199254740992.0);
  }
  // Seeds that differ only in their upper 32 bits are different streams.
  dne::CounterStream low(1, dne::StreamPurpose::kTest, 0, 0), high((std::uint64_t{1} << 32) | 1, dne::StreamPurpose::kTest, 0, 0);
  std::vector<std::uint32_t> a, b;
  for (int i = 0; i < 8; ++i) {
    a.push_back(low.next_u32());
    b.push_back(high.next_u32());
  }
  EXPECT_NE(a, b);
}

TEST(StopSignal, NoRequestNoThrowAndARecordedSignalThrowsInterrupted) {
  ASSERT_EQ(dne::stop_signal(), 0);
  EXPECT_NO_THROW(dne::throw_if_stop_requested("while testing"));
  // A StopOnSignal's handlers outlive a received signal, so the request is made in a child.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    {
      const dne::StopOnSignal stop;
      std::raise(SIGINT);
      if (dne::stop_signal() != SIGINT) code = 10;
      try {
        dne::throw_if_stop_requested("between two batches");
        code = code ? code : 11;
      } catch (const dne::Interrupted& e) {
        if (std::string(e.what()) != "SIGINT received between two batches") code = code ? code : 12;
        if (e.exit_code() != 128 + SIGINT || e.signal_number() != SIGINT) code = code ? code : 13;
        if (std::string(e.kind()) != "interrupted") code = code ? code : 14;
      }
    }
    if (dne::stop_signal() != 0) code = code ? code : 15;  // the request belonged to the StopOnSignal
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "check number " << WEXITSTATUS(status) << " failed in the child";
}

TEST(Errors, ExitCodesAndKindsAreTheDocumentedOnes) {
  // errors.hpp: input errors exit 2, everything else 1.
  const dne::ResourceError resource("needs 12 GiB, 3 GiB available");
  EXPECT_EQ(resource.exit_code(), 2);
  EXPECT_STREQ(resource.kind(), "resource error");
  EXPECT_STREQ(resource.what(), "needs 12 GiB, 3 GiB available");
  const dne::PeerFailure peer("rank 3 failed");
  EXPECT_EQ(peer.exit_code(), 1);
  EXPECT_STREQ(peer.kind(), "peer failure");
  EXPECT_STREQ(peer.what(), "rank 3 failed");
  // Both are dne::Error, so main maps them through the base.
  const dne::Error& as_base = peer;
  EXPECT_EQ(as_base.exit_code(), 1);
  const dne::Error& resource_base = resource;
  EXPECT_EQ(resource_base.exit_code(), 2);
  // A preflight error keeps its cause's kind and exit code.
  const dne::PreflightError pre(resource);
  EXPECT_EQ(pre.exit_code(), 2);
  EXPECT_STREQ(pre.kind(), "resource error");
}

}  // namespace
