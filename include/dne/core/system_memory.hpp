// How much memory this node has available now, for the up-front checks that turn what would be
// std::bad_alloc (or the kernel's OOM killer, with overcommit) into one clear error line; and
// this process's own peak, for the benchmarks.
#pragma once

#include <string>

namespace dne {

/// Bytes of memory available now: MemAvailable of /proc/meminfo, or the free physical pages
/// when that cannot be read.
double available_memory_bytes();

/// This process's peak resident memory in bytes (VmHWM of /proc/self/status; ru_maxrss when
/// that cannot be read).
double peak_resident_bytes();

/// What this process's mappings of one file hold in memory, summed over them (the Rss, Pss,
/// Shared_Clean + Shared_Dirty and Private_Clean + Private_Dirty lines of /proc/self/smaps, in
/// bytes). A page that two processes have touched counts as shared in both; Pss splits it.
struct MappingResidency {
  double rss = 0.0, pss = 0.0, shared = 0.0, private_bytes = 0.0;
  int mappings = 0;  // how many mappings of the file there are (0: not mapped, or no /proc)
};
MappingResidency mapping_residency(const std::string& path);

}  // namespace dne
