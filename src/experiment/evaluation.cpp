// The downstream evaluation of every method's embeddings (see evaluation.hpp).
#include "dne/experiment/evaluation.hpp"

#include "dne/metrics/metrics.hpp"

namespace dne::experiment {

torch::Tensor int_tensor(const std::vector<int>& v) {
  return torch::tensor(std::vector<std::int64_t>(v.begin(), v.end()), torch::kInt64);
}

std::vector<double> to_doubles(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::vector<float> to_floats(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

ScoredSplit score_split(const torch::Tensor& z_train, const torch::Tensor& z, const data::ImageSet& split,
                        const EvalContext& e, const config::ProbeOptions& disease_options) {
  ScoredSplit s;
  s.score = to_doubles(probe::LinearProbe::fit(z_train, e.y_train, disease_options).probability(z));
  s.leak_score = to_doubles(probe::LinearProbe::fit(z_train, e.a_train, e.probes).probability(z));
  s.metrics = metrics::classification_metrics(s.score, split.label, split.sa);
  if (e.frozen != nullptr) {
    s.frozen_score = to_doubles(e.frozen->probability(z));
    s.metrics["frozen_sa_accuracy"] = metrics::accuracy(s.frozen_score, split.sa);
    s.metrics["frozen_sa_auc"] = metrics::roc_auc(s.frozen_score, split.sa);
  }
  s.metrics["sa_leakage_auc"] = metrics::roc_auc(s.leak_score, split.sa);
  s.metrics["sa_leakage_accuracy"] = metrics::accuracy(s.leak_score, split.sa);
  return s;
}

Downstream evaluate(Splits z, const EvalContext& e) {
  Downstream d;
  d.z = std::move(z);
  const auto& test = e.dataset.test;
  auto disease_options = e.probes;
  if (!e.probes.l2_choices.empty()) {
    double best = -1.0;
    for (const double l2 : config::number_list(e.probes.l2_choices, "probes.l2_choices")) {
      auto o = e.probes;
      o.l2 = l2;
      d.val_auc.push_back(metrics::roc_auc(to_doubles(probe::LinearProbe::fit(d.z.train, e.y_train, o).probability(d.z.val)),
                                           e.dataset.val.label));
      if (d.val_auc.back() > best) {  // ties keep the earlier (listed first) value
        best = d.val_auc.back();
        disease_options.l2 = l2;
      }
    }
  }
  d.disease_l2 = disease_options.l2;
  ScoredSplit scored = score_split(d.z.train, d.z.test, test, e, disease_options);
  d.score = std::move(scored.score);
  d.leak_score = std::move(scored.leak_score);
  d.frozen_score = std::move(scored.frozen_score);
  auto& m = d.metrics;
  m = std::move(scored.metrics);
  m["sa_probe_clean_accuracy"] = metrics::accuracy(e.g_clean_test, test.sa);
  m["sa_probe_clean_auc"] = metrics::roc_auc(e.g_clean_test, test.sa);
  if (!e.dataset.train.age.empty()) {  // the attack on the continuous attribute
    const auto& age = e.dataset.train.age;
    const auto ridge = probe::RidgeProbe::fit(d.z.train, torch::tensor(age, torch::kFloat32), e.probes.l2);
    m["age_leakage_r2"] = metrics::r_squared(to_doubles(ridge.predict(d.z.test)),
                                             std::vector<double>(test.age.begin(), test.age.end()));
  }
  return d;
}

}  // namespace dne::experiment
