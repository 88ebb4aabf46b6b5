// The method registry (experiment/method_registry.hpp) and the cost model its entries carry
// (experiment::estimated_cost): every method of config's table has its code, the noise methods
// an editor, the VAE none; costs checked against hand-computed counts of FM image passes.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "dne/config/config.hpp"
#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/experiment/method_registry.hpp"

namespace {

using dne::config::MethodKind;

TEST(MethodRegistry, EveryMethodOfTheTableHasItsCodeInTableOrder) {
  const auto& table = dne::config::method_table();
  const auto& registry = dne::experiment::method_registry();
  ASSERT_EQ(registry.size(), table.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(&registry[i].info, &table[i]);
    EXPECT_NE(registry[i].run, nullptr) << table[i].name;
    EXPECT_NE(table[i].edit_cost, nullptr) << table[i].name;
    EXPECT_NE(table[i].check, nullptr) << table[i].name;
    // Noise methods (ERM's zero noise included) have an editor; the embedding methods none.
    EXPECT_EQ(static_cast<bool>(registry[i].edit), table[i].kind != MethodKind::kEmbedding) << table[i].name;
  }
}

TEST(MethodRegistry, LookupByNameAndUnknownNames) {
  for (const char* name : {"none", "random", "whitebox", "gezo", "rge", "spsa", "nes", "vae"})
    EXPECT_EQ(dne::experiment::method(name).info.name, name);
  EXPECT_THROW(dne::experiment::method("magic"), dne::ConfigError);
}

TEST(MethodRegistry, TheKeysEachMethodReads) {
  const auto has = [](const std::vector<std::string>& keys, const char* key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  const auto gezo = dne::config::method_keys("gezo");
  EXPECT_TRUE(has(gezo, "gezo.local_epochs"));
  EXPECT_TRUE(has(gezo, "zo.candidates"));
  EXPECT_TRUE(has(gezo, "dne.lambda"));
  EXPECT_FALSE(has(gezo, "zo.lr"));  // RGE/SPSA/NES only: GeZO never read it
  EXPECT_FALSE(has(gezo, "vae.latent"));
  const auto vae = dne::config::method_keys("vae");
  EXPECT_TRUE(has(vae, "vae.latent"));
  EXPECT_FALSE(has(vae, "dne.lambda"));
  EXPECT_TRUE(dne::config::method_keys("none").empty());  // ERM reads only the shared keys
  EXPECT_THROW(dne::config::method_keys("magic"), dne::ConfigError);
}

TEST(MethodRegistry, TheMethodsOwnChecks) {
  dne::config::ExperimentConfig c;
  c.dne.method = "gezo";
  c.zo.sigma = 0.01;
  c.zo.sigma_min = 0.1;
  EXPECT_NE(dne::config::method_info("gezo").check(c).find("gezo.sigma_min"), std::string::npos);
  EXPECT_EQ(dne::config::method_info("rge").check(c), "");  // RGE has no sigma_min
  c.vae.hidden = "16, 2.5";
  EXPECT_NE(dne::config::method_info("vae").check(c).find("vae.hidden"), std::string::npos);
  c.vae.hidden = "16, 8";
  EXPECT_EQ(dne::config::method_info("vae").check(c), "");
}

TEST(EstimatedCost, HandCountedImagePassesPerMethod) {
  dne::config::ExperimentConfig c;  // the phantom: n_train and n_test from its config
  c.data.n_train = 100;
  c.data.n_test = 50;
  c.dne.epochs = 2;
  c.zo.candidates = 4;     // 2C + 1 = 9 queries per image and iteration
  c.zo.local_epochs = 3;   // GeZO's R
  c.vae.epochs = 10;
  c.vae.adversary_steps = 4;
  const auto cost = [&](const char* method) {
    auto e = c;
    e.dne.method = method;
    return dne::experiment::estimated_cost(e);
  };
  EXPECT_DOUBLE_EQ(cost("none"), 2.0 * 150);                        // clean + debiased passes
  EXPECT_DOUBLE_EQ(cost("random"), 3.0 * 150);                      // + the control's
  EXPECT_DOUBLE_EQ(cost("whitebox"), 3.0 * 150 + 3.0 * 2 * 100);    // forward + backward per image and epoch
  EXPECT_DOUBLE_EQ(cost("gezo"), 3.0 * 150 + 2.0 * 100 * 3 * 9);    // epochs x N x R x (2C + 1)
  EXPECT_DOUBLE_EQ(cost("spsa"), 3.0 * 150 + 2.0 * 100 * 1 * 9);
  EXPECT_DOUBLE_EQ(cost("vae"), 1.0 * 150 + 2.0 * 0.01 * 10 * 100 * 5);  // two VAEs, 1% of a pass per row-epoch
  c.zo.budget = 1000;  // the budget caps the editor's queries
  EXPECT_DOUBLE_EQ(cost("gezo"), 3.0 * 150 + 1000.0);
  c.data.source = "embeddings";  // no FM passes at all; the probes still cost something
  c.data_rows_train = 100;
  c.data_rows_test = 50;
  EXPECT_DOUBLE_EQ(cost("none"), 1.0);
}

}  // namespace
