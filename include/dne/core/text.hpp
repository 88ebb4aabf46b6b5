// Text that is safe to store and print: HDF5 strings are declared UTF-8, and an error message
// may carry bytes from a user's file (a binary manifest header, a path in another encoding).
#pragma once

#include <string>

namespace dne {

/// `text` with every byte that is not part of a well-formed UTF-8 sequence (and every NUL and
/// other C0 control except tab and newline) written as \xNN; valid UTF-8 passes unchanged.
std::string valid_utf8(const std::string& text);

}  // namespace dne
