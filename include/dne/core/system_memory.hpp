// How much memory this node has available now, for the up-front checks that turn what would be
// std::bad_alloc (or the kernel's OOM killer, with overcommit) into one clear error line; and
// this process's own peak, for the benchmarks.
#pragma once

namespace dne {

/// Bytes of memory available now: MemAvailable of /proc/meminfo, or the free physical pages
/// when that cannot be read.
double available_memory_bytes();

/// This process's peak resident memory in bytes (VmHWM of /proc/self/status; ru_maxrss when
/// that cannot be read).
double peak_resident_bytes();

}  // namespace dne
