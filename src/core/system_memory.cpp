// Available memory of this node (see system_memory.hpp).
#include "dne/core/system_memory.hpp"

#include <unistd.h>

#include <fstream>
#include <string>

namespace dne {

double available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  double kib = 0.0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024.0;
  return static_cast<double>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace dne
