// This machine's host name, for messages, provenance and lock notes. No Torch.
#pragma once

#include <string>

namespace dne {

/// gethostname(2), or "?" when it fails.
std::string host_name();

}  // namespace dne
