// Implementation of the classification and fairness metrics declared in dne/metrics/metrics.hpp.
//
// Everything is computed in double from integer counts. Inputs are validated once up front
// (lengths, label/SA in {0, 1}, no NaN score); after that every undefined quantity is carried
// as quiet NaN, which propagates through the gap formulas so that a gap needing an empty group
// is NaN rather than a misleading 0. AUC sorts (score, label, sa) once and derives the overall
// and per-SA-group AUCs from that single sorted order.
#include "dne/metrics/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "dne/core/errors.hpp"

namespace dne::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_same_length(const char* name_a, std::size_t n_a, const char* name_b,
                       std::size_t n_b) {
  if (n_a != n_b) {
    throw DataError("metrics: length mismatch: " + std::string(name_a) + " has " +
                    std::to_string(n_a) + " entries but " + name_b + " has " +
                    std::to_string(n_b));
  }
}

void check_binary(const char* name, const std::vector<int>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != 0 && v[i] != 1) {
      throw DataError("metrics: " + std::string(name) + "[" + std::to_string(i) +
                      "] = " + std::to_string(v[i]) + ", expected 0 or 1");
    }
  }
}

void check_scores(const std::vector<double>& score) {
  for (std::size_t i = 0; i < score.size(); ++i) {
    if (std::isnan(score[i])) {
      throw DataError("metrics: score[" + std::to_string(i) + "] is NaN");
    }
  }
}

void check_threshold(double threshold) {
  if (std::isnan(threshold)) throw DataError("metrics: threshold is NaN");
}

/// num / den as double, NaN when den == 0 (an empty group).
double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? kNaN : static_cast<double>(num) / static_cast<double>(den);
}

/// |x - y|; NaN if either is NaN (IEEE arithmetic already propagates it).
double abs_diff(double x, double y) { return std::fabs(x - y); }

/// max(x, y) that is NaN if either is NaN (std::max would silently drop a NaN first argument).
double nan_max(double x, double y) {
  if (std::isnan(x) || std::isnan(y)) return kNaN;
  return std::max(x, y);
}

/// Minimum over the non-NaN values; NaN if none is defined.
double min_defined(const std::vector<double>& values) {
  double best = kNaN;
  for (double v : values) {
    if (std::isnan(v)) continue;
    if (std::isnan(best) || v < best) best = v;
  }
  return best;
}

struct Sample {
  double score;
  int label;
  int sa;
};

/// AUC over the samples of `sorted` (ascending score) whose SA equals `group`, or all samples
/// when group < 0. Walks the sorted order once, block by block of equal scores: each positive in a
/// block beats every negative seen in earlier blocks and ties (1/2) with the block's negatives.
/// This equals Mann-Whitney U with average ranks, divided by n_pos * n_neg.
double auc_sorted(const std::vector<Sample>& sorted, int group) {
  double wins = 0.0;          // U statistic (in units of pairs; half-integers for ties)
  std::int64_t neg_below = 0;  // negatives with score strictly below the current block
  std::int64_t n_pos = 0;
  std::int64_t n_neg = 0;
  std::size_t i = 0;
  while (i < sorted.size()) {
    std::size_t j = i;
    std::int64_t block_pos = 0;
    std::int64_t block_neg = 0;
    while (j < sorted.size() && sorted[j].score == sorted[i].score) {
      if (group < 0 || sorted[j].sa == group) {
        if (sorted[j].label == 1) {
          ++block_pos;
        } else {
          ++block_neg;
        }
      }
      ++j;
    }
    wins += static_cast<double>(block_pos) * static_cast<double>(neg_below) +
            0.5 * static_cast<double>(block_pos) * static_cast<double>(block_neg);
    neg_below += block_neg;
    n_pos += block_pos;
    n_neg += block_neg;
    i = j;
  }
  if (n_pos == 0 || n_neg == 0) return kNaN;
  return wins / (static_cast<double>(n_pos) * static_cast<double>(n_neg));
}

std::vector<Sample> sorted_samples(const std::vector<double>& score, const std::vector<int>& label,
                                   const std::vector<int>* sa) {
  std::vector<Sample> s(score.size());
  for (std::size_t i = 0; i < score.size(); ++i) {
    s[i] = Sample{score[i], label[i], sa != nullptr ? (*sa)[i] : 0};
  }
  std::sort(s.begin(), s.end(), [](const Sample& a, const Sample& b) { return a.score < b.score; });
  return s;
}

}  // namespace

double accuracy(const std::vector<double>& score, const std::vector<int>& label, double threshold) {
  check_same_length("score", score.size(), "label", label.size());
  check_binary("label", label);
  check_scores(score);
  check_threshold(threshold);
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < score.size(); ++i) {
    const int pred = score[i] >= threshold ? 1 : 0;  // tie at the threshold -> positive
    if (pred == label[i]) ++correct;
  }
  return ratio(correct, static_cast<std::int64_t>(score.size()));
}

double roc_auc(const std::vector<double>& score, const std::vector<int>& label) {
  check_same_length("score", score.size(), "label", label.size());
  check_binary("label", label);
  check_scores(score);
  return auc_sorted(sorted_samples(score, label, nullptr), -1);
}

const std::vector<std::string>& classification_metric_names() {
  static const std::vector<std::string> names = {
      "accuracy",  "auc",       "acc_a0_y0",      "acc_a0_y1", "acc_a1_y0",
      "acc_a1_y1", "eo_n",      "eo_p",           "di",        "tpr_gap",
      "fpr_gap",   "equalized_odds", "dp_gap",    "worst_group_accuracy",
      "worst_group_auc",
  };
  return names;
}

double r_squared(const std::vector<double>& prediction, const std::vector<double>& target) {
  if (prediction.size() != target.size() || target.size() < 2)
    throw DataError("r_squared: " + std::to_string(prediction.size()) + " predictions for " +
                    std::to_string(target.size()) + " targets (need equal lengths, at least 2)");
  double mean = 0.0;
  for (const double t : target) mean += t;
  mean /= static_cast<double>(target.size());
  double residual = 0.0, total = 0.0;
  for (std::size_t i = 0; i < target.size(); ++i) {
    residual += (target[i] - prediction[i]) * (target[i] - prediction[i]);
    total += (target[i] - mean) * (target[i] - mean);
  }
  return total > 0.0 ? 1.0 - residual / total : std::nan("");
}

std::map<std::string, double> classification_metrics(const std::vector<double>& score,
                                                     const std::vector<int>& label,
                                                     const std::vector<int>& sa,
                                                     double threshold) {
  check_same_length("score", score.size(), "label", label.size());
  check_same_length("score", score.size(), "sa", sa.size());
  check_binary("label", label);
  check_binary("sa", sa);
  check_scores(score);
  check_threshold(threshold);

  // Counts per cell [a][y]: samples, correct predictions, positive predictions.
  std::int64_t n[2][2] = {{0, 0}, {0, 0}};
  std::int64_t correct[2][2] = {{0, 0}, {0, 0}};
  std::int64_t pred_pos[2][2] = {{0, 0}, {0, 0}};
  for (std::size_t i = 0; i < score.size(); ++i) {
    const int a = sa[i];
    const int y = label[i];
    const int pred = score[i] >= threshold ? 1 : 0;  // tie at the threshold -> positive
    ++n[a][y];
    if (pred == y) ++correct[a][y];
    if (pred == 1) ++pred_pos[a][y];
  }

  const std::int64_t n_total = n[0][0] + n[0][1] + n[1][0] + n[1][1];
  const std::int64_t correct_total = correct[0][0] + correct[0][1] + correct[1][0] + correct[1][1];

  double acc[2][2];
  for (int a = 0; a < 2; ++a) {
    for (int y = 0; y < 2; ++y) acc[a][y] = ratio(correct[a][y], n[a][y]);
  }

  // Within SA group a: TPR = P(pred=1 | y=1) = acc_a_y1, FPR = P(pred=1 | y=0) = 1 - acc_a_y0.
  double tpr[2];
  double fpr[2];
  double selection[2];  // P(pred=1 | a)
  for (int a = 0; a < 2; ++a) {
    tpr[a] = ratio(pred_pos[a][1], n[a][1]);
    fpr[a] = ratio(pred_pos[a][0], n[a][0]);
    selection[a] = ratio(pred_pos[a][0] + pred_pos[a][1], n[a][0] + n[a][1]);
  }

  // di = |1 - acc_a1_y1 / acc_a0_y1| as in the DNE reference code; NaN if the denominator is 0/NaN.
  const double di = (std::isnan(acc[0][1]) || acc[0][1] == 0.0)
                        ? kNaN
                        : std::fabs(1.0 - acc[1][1] / acc[0][1]);  // NaN if acc_a1_y1 is NaN

  const double tpr_gap = abs_diff(tpr[1], tpr[0]);
  const double fpr_gap = abs_diff(fpr[1], fpr[0]);

  const std::vector<Sample> sorted = sorted_samples(score, label, &sa);  // the one sort

  std::map<std::string, double> m;
  m["accuracy"] = ratio(correct_total, n_total);
  m["auc"] = auc_sorted(sorted, -1);
  m["acc_a0_y0"] = acc[0][0];
  m["acc_a0_y1"] = acc[0][1];
  m["acc_a1_y0"] = acc[1][0];
  m["acc_a1_y1"] = acc[1][1];
  m["eo_n"] = abs_diff(acc[1][0], acc[0][0]);
  m["eo_p"] = abs_diff(acc[1][1], acc[0][1]);
  m["di"] = di;
  m["tpr_gap"] = tpr_gap;
  m["fpr_gap"] = fpr_gap;
  m["equalized_odds"] = nan_max(tpr_gap, fpr_gap);
  m["dp_gap"] = abs_diff(selection[1], selection[0]);
  m["worst_group_accuracy"] = min_defined({acc[0][0], acc[0][1], acc[1][0], acc[1][1]});
  m["worst_group_auc"] = min_defined({auc_sorted(sorted, 0), auc_sorted(sorted, 1)});
  return m;
}

std::map<std::string, double> noise_energy_by_region(const std::vector<float>& eps,
                                                     const std::vector<std::uint8_t>& sa_region,
                                                     const std::vector<std::uint8_t>& disease_region) {
  if (sa_region.size() != eps.size() || disease_region.size() != eps.size())
    throw DataError("metrics: noise has " + std::to_string(eps.size()) + " pixels but the region masks have " +
                    std::to_string(sa_region.size()) + " and " + std::to_string(disease_region.size()));
  double total = 0.0, sa = 0.0, disease = 0.0, elsewhere = 0.0, area_sa = 0.0, area_disease = 0.0;
  for (std::size_t p = 0; p < eps.size(); ++p) {
    const double e = static_cast<double>(eps[p]) * eps[p];
    total += e;
    if (sa_region[p]) { sa += e; area_sa += 1.0; }
    if (disease_region[p]) { disease += e; area_disease += 1.0; }
    if (!sa_region[p] && !disease_region[p]) elsewhere += e;
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double n = static_cast<double>(eps.size());
  return {{"noise_energy_sa_region", total > 0.0 ? sa / total : nan},
          {"noise_energy_disease_region", total > 0.0 ? disease / total : nan},
          {"noise_energy_elsewhere", total > 0.0 ? elsewhere / total : nan},
          {"region_area_sa", n > 0.0 ? area_sa / n : nan},
          {"region_area_disease", n > 0.0 ? area_disease / n : nan}};
}

}  // namespace dne::metrics
