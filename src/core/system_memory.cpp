// Available memory of this node (see system_memory.hpp).
#include "dne/core/system_memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
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

double peak_resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;  // "VmHWM:   123 kB"
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;
}

MappingResidency mapping_residency(const std::string& path) {
  MappingResidency r;
  std::error_code ec;
  const auto canonical = std::filesystem::canonical(path, ec);
  if (ec) return r;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;  // in the block of a mapping of `path`
  while (std::getline(smaps, line)) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (!first.empty() && first.back() != ':') {  // a mapping's header: "start-end perms offset dev inode path"
      std::string perms, offset, dev, inode, name;
      fields >> perms >> offset >> dev >> inode;
      std::getline(fields >> std::ws, name);
      inside = name == canonical.string();
      if (inside) ++r.mappings;
      continue;
    }
    if (!inside) continue;
    double kib = 0.0;
    fields >> kib;
    const double bytes = kib * 1024.0;
    if (first == "Rss:") r.rss += bytes;
    else if (first == "Pss:") r.pss += bytes;
    else if (first == "Shared_Clean:" || first == "Shared_Dirty:") r.shared += bytes;
    else if (first == "Private_Clean:" || first == "Private_Dirty:") r.private_bytes += bytes;
  }
  return r;
}

}  // namespace dne
