// Per-step optimisation curves, stored as /trace/<name> in the result file.
//
// A Trace is a set of equally long columns (one value per optimisation step). Torch-free, so
// the store and analysis code can use it without the model stack.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace dne {

class Trace {
 public:
  /// Append one value to column `name` (columns are created on first use).
  void add(const std::string& name, double value) { columns_[name].push_back(value); }
  const std::map<std::string, std::vector<double>>& columns() const { return columns_; }
  std::size_t steps() const { return columns_.empty() ? 0 : columns_.begin()->second.size(); }

 private:
  std::map<std::string, std::vector<double>> columns_;
};

}  // namespace dne
