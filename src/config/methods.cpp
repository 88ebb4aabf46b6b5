// The method table (see methods.hpp).
#include "dne/config/methods.hpp"

#include <algorithm>

#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"

namespace dne::config {
namespace {

double no_edit(const ExperimentConfig&, double) { return 0.0; }

// Forward and backward through the FM for every training image of every epoch.
double whitebox_cost(const ExperimentConfig& c, double n_train) {
  return 3.0 * static_cast<double>(c.dne.epochs) * n_train;
}

// 2C + 1 queries per image and iteration (GeZO: R local iterations per batch), at most the budget.
double zeroth_order_cost(const ExperimentConfig& c, double n_train, double local_iterations) {
  double edit = static_cast<double>(c.dne.epochs) * n_train * local_iterations * static_cast<double>(2 * c.zo.candidates + 1);
  if (c.zo.budget > 0) edit = std::min(edit, static_cast<double>(c.zo.budget));
  return edit;
}
double gezo_cost(const ExperimentConfig& c, double n_train) {
  return zeroth_order_cost(c, n_train, static_cast<double>(c.zo.local_epochs));
}
double two_point_cost(const ExperimentConfig& c, double n_train) { return zeroth_order_cost(c, n_train, 1.0); }

// Two VAEs (the method and its control), a row-epoch of an MLP counted as 1% of an image pass.
double vae_cost(const ExperimentConfig& c, double n_train) {
  return 2.0 * 0.01 * static_cast<double>(c.vae.epochs) * n_train * static_cast<double>(1 + c.vae.adversary_steps);
}

std::string no_check(const ExperimentConfig&) { return ""; }

std::string gezo_check(const ExperimentConfig& c) {
  if (c.zo.sigma_min > c.zo.sigma)
    return "gezo.sigma_min (" + format_value(c.zo.sigma_min) + ") is larger than zo.sigma (" +
           format_value(c.zo.sigma) + ")";
  return "";
}

std::string vae_check(const ExperimentConfig& c) {
  for (const double w : number_list(c.vae.hidden, "vae.hidden"))
    if (!(w >= 1.0 && w <= 65536.0 && w == static_cast<double>(static_cast<std::int64_t>(w))))
      return "vae.hidden: \"" + c.vae.hidden + "\": every width must be a whole number in [1, 65536]";
  return "";
}

}  // namespace

const std::vector<MethodInfo>& method_table() {
  static const std::vector<MethodInfo> table = {
      {"none", MethodKind::kReference, "", "ERM: the clean images, no noise", no_edit, no_check},
      {"random", MethodKind::kControl, "", "i.i.d. Gaussian noise of L2 norm dne.random_l2 (inside the budget)", no_edit,
       no_check},
      {"whitebox", MethodKind::kWhiteBox, "images", "Adam on the noise, gradients through the FM", whitebox_cost, no_check},
      {"gezo", MethodKind::kZerothOrder, "queries", "GeZO: greedy zeroth-order search with momentum", gezo_cost,
       gezo_check},
      {"rge", MethodKind::kZerothOrder, "queries", "random gradient estimates (two-point, Gaussian directions)",
       two_point_cost, no_check},
      {"spsa", MethodKind::kZerothOrder, "queries", "SPSA (two-point, Rademacher directions)", two_point_cost, no_check},
      {"nes", MethodKind::kZerothOrder, "queries",
       "natural evolution strategies: antithetic Gaussian directions, rank-shaped losses, Adam/SGD", two_point_cost,
       no_check},
      {"vae", MethodKind::kEmbedding, "epochs", "adversarial VAE on the FM's embeddings ([vae]; its control: no adversary)",
       vae_cost, vae_check},
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
