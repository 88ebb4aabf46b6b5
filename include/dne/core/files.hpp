// File-system helpers that must not come from libstdc++ in programs linked with LibTorch.
//
// pip's LibTorch >= 2.5 exports its own statically linked copy of std::filesystem::remove_all
// (pytorch/pytorch#133437); a program linked with it that calls remove_all crashes (seen on the
// last GPU machine, docs/gpu.md). `remove_tree` does the same with POSIX nftw(3). No Torch.
#pragma once

#include <string>

namespace dne {

/// Removes `path` and, if it is a directory, everything below it (symlinks are removed, never
/// followed). A missing path is no error; returns false if anything could not be removed.
bool remove_tree(const std::string& path);

}  // namespace dne
