// This machine's host name (see host.hpp).
#include "dne/core/host.hpp"

#include <unistd.h>

namespace dne {

std::string host_name() {
  char host[256] = "?";
  if (gethostname(host, sizeof host - 1) != 0) return "?";
  return host;
}

}  // namespace dne
