// Classification and fairness metrics for binary disease labels and a binary sensitive attribute.
//
// Pure functions over plain vectors (no Torch, no I/O): overall accuracy, ROC AUC (Mann-Whitney
// with average ranks for ties), per-(SA, label) group accuracies, the DNE reference fairness gaps
// (EO_n, EO_p, DI) and Fairlearn-style gaps (TPR/FPR gaps, equalized odds, demographic parity),
// plus worst-group accuracy and AUC. Names of the returned metrics are the contract names of
// docs/metrics.md. A metric that is undefined on the given data (empty group, missing class,
// division by zero) is quiet NaN, never 0 and never an exception; malformed input (length
// mismatch, label or SA outside {0, 1}, NaN score) throws dne::DataError.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dne::metrics {

/// Fraction of samples whose prediction (score >= threshold) equals the label.
/// score: (N,) predicted probability of the positive class; label: (N,) in {0, 1}.
/// Returns NaN for N == 0. Throws dne::DataError on length mismatch, a label outside {0, 1},
/// a NaN score or a NaN threshold.
double accuracy(const std::vector<double>& score, const std::vector<int>& label,
                double threshold = 0.5);

/// Area under the ROC curve = P(score_pos > score_neg) + 1/2 P(score_pos == score_neg)
/// (Mann-Whitney U / (n_pos * n_neg), average ranks for ties). O(N log N): one sort.
/// Returns NaN when either class is absent. Throws dne::DataError like accuracy().
double roc_auc(const std::vector<double>& score, const std::vector<int>& label);

/// Coefficient of determination 1 - sum (t - p)^2 / sum (t - mean t)^2 of predictions p for
/// targets t (equal lengths, >= 2): 1 is perfect, 0 is the mean's score, negative is worse than
/// the mean. NaN when the targets are constant. Throws dne::DataError on length mismatch.
double r_squared(const std::vector<double>& prediction, const std::vector<double>& target);

/// All classification and fairness metrics, keyed by the contract names in
/// classification_metric_names(). score, label, sa: (N,) each; label and sa in {0, 1};
/// prediction = score >= threshold. Undefined metrics are NaN (see docs/metrics.md).
/// Throws dne::DataError on length mismatch, label/sa outside {0, 1}, NaN score or threshold.
std::map<std::string, double> classification_metrics(const std::vector<double>& score,
                                                     const std::vector<int>& label,
                                                     const std::vector<int>& sa,
                                                     double threshold = 0.5);

/// The keys of classification_metrics() in a fixed order, for writers that need a stable order:
/// accuracy, auc, acc_a0_y0, acc_a0_y1, acc_a1_y0, acc_a1_y1, eo_n, eo_p, di, tpr_gap, fpr_gap,
/// equalized_odds, dp_gap, worst_group_accuracy, worst_group_auc.
const std::vector<std::string>& classification_metric_names();

/// Where a noise image's energy lies: eps (P,) pixels, the SA and disease region masks (P,) each
/// (1 inside; they may overlap). Returns noise_energy_sa_region = sum over the SA region of eps^2
/// / sum eps^2, noise_energy_disease_region likewise, noise_energy_elsewhere (outside both), and
/// region_area_sa, region_area_disease (the fractions of pixels: the expected energy fractions of
/// i.i.d. noise). Zero noise gives NaN energy fractions. Throws dne::DataError on a length mismatch.
std::map<std::string, double> noise_energy_by_region(const std::vector<float>& eps,
                                                     const std::vector<std::uint8_t>& sa_region,
                                                     const std::vector<std::uint8_t>& disease_region);

}  // namespace dne::metrics
