// The method table (see methods.hpp).
#include "dne/config/methods.hpp"

#include <algorithm>

#include "dne/core/errors.hpp"

namespace dne::config {

const std::vector<MethodInfo>& method_table() {
  static const std::vector<MethodInfo> table = {
      {"none", MethodKind::kReference, "", "ERM: the clean images, no noise"},
      {"random", MethodKind::kControl, "", "i.i.d. Gaussian noise of L2 norm dne.random_l2 (inside the budget)"},
      {"whitebox", MethodKind::kWhiteBox, "images", "Adam on the noise, gradients through the FM"},
      {"gezo", MethodKind::kZerothOrder, "queries", "GeZO: greedy zeroth-order search with momentum"},
      {"rge", MethodKind::kZerothOrder, "queries", "random gradient estimates (two-point, Gaussian directions)"},
      {"spsa", MethodKind::kZerothOrder, "queries", "SPSA (two-point, Rademacher directions)"},
      {"nes", MethodKind::kZerothOrder, "queries",
       "natural evolution strategies: antithetic Gaussian directions, rank-shaped losses, Adam/SGD"},
      {"vae", MethodKind::kEmbedding, "epochs", "adversarial VAE on the FM's embeddings ([vae]; its control: no adversary)"},
  };
  return table;
}

const MethodInfo& method_info(const std::string& name) {
  for (const auto& m : method_table())
    if (m.name == name) return m;
  std::string names;
  for (const auto& m : method_table()) names += (names.empty() ? "" : ", ") + m.name;
  throw ConfigError("unknown method '" + name + "' (one of: " + names + ")");
}

std::vector<std::string> method_names(const std::vector<MethodKind>& kinds) {
  std::vector<std::string> out;
  for (const auto& m : method_table())
    if (kinds.empty() || std::find(kinds.begin(), kinds.end(), m.kind) != kinds.end()) out.push_back(m.name);
  return out;
}

std::string kind_name(MethodKind kind) {
  switch (kind) {
    case MethodKind::kReference: return "reference";
    case MethodKind::kControl: return "control";
    case MethodKind::kWhiteBox: return "whitebox";
    case MethodKind::kZerothOrder: return "zeroth_order";
    case MethodKind::kEmbedding: return "embedding";
  }
  return "?";
}

bool learns_noise(const std::string& method) {
  const auto kind = method_info(method).kind;
  return kind == MethodKind::kWhiteBox || kind == MethodKind::kZerothOrder;
}

bool needs_images(const std::string& method) {
  const auto kind = method_info(method).kind;
  return kind != MethodKind::kReference && kind != MethodKind::kEmbedding;
}

}  // namespace dne::config
