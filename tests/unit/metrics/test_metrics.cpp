// Unit tests for dne::metrics: accuracy, ROC AUC and the group / fairness metrics.
//
// Every expected value is computed by hand in the comments next to it (never by the code under
// test): small data sets where each cell count, rate, gap and AUC pair count can be checked on
// paper. Also covers the defined-undefined cases (empty cells, single class, zero denominators ->
// NaN) and the typed DataError for malformed input.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/metrics/metrics.hpp"

namespace dm = dne::metrics;

namespace {

constexpr double kEps = 1e-12;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Runs `fn`, expects dne::DataError whose message contains `needle`.
template <typename Fn>
void expect_data_error(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected dne::DataError containing '" << needle << "'";
  } catch (const dne::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message was: " << e.what();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// 8-sample case, every metric by hand. threshold 0.5.
//   i  a y score pred correct
//   0  0 0 0.10  0    yes
//   1  0 0 0.60  1    no
//   2  0 1 0.70  1    yes
//   3  0 1 0.40  0    no
//   4  0 1 0.55  1    yes
//   5  1 0 0.20  0    yes
//   6  1 1 0.90  1    yes
//   7  1 1 0.30  0    no
// ---------------------------------------------------------------------------------------------
TEST(Metrics, EightSampleAllMetricsByHand) {
  const std::vector<double> score = {0.10, 0.60, 0.70, 0.40, 0.55, 0.20, 0.90, 0.30};
  const std::vector<int> label = {0, 0, 1, 1, 1, 0, 1, 1};
  const std::vector<int> sa = {0, 0, 0, 0, 0, 1, 1, 1};

  const auto m = dm::classification_metrics(score, label, sa);
  ASSERT_EQ(m.size(), dm::classification_metric_names().size());

  // accuracy: correct = i0,i2,i4,i5,i6 = 5 of 8 = 0.625
  EXPECT_NEAR(m.at("accuracy"), 0.625, kEps);
  EXPECT_NEAR(dm::accuracy(score, label), 0.625, kEps);

  // acc_a0_y0: {i0 ok, i1 wrong} = 1/2; acc_a0_y1: {i2 ok, i3 wrong, i4 ok} = 2/3
  // acc_a1_y0: {i5 ok} = 1;              acc_a1_y1: {i6 ok, i7 wrong} = 1/2
  EXPECT_NEAR(m.at("acc_a0_y0"), 0.5, kEps);
  EXPECT_NEAR(m.at("acc_a0_y1"), 2.0 / 3.0, kEps);
  EXPECT_NEAR(m.at("acc_a1_y0"), 1.0, kEps);
  EXPECT_NEAR(m.at("acc_a1_y1"), 0.5, kEps);

  // eo_n = |1 - 1/2| = 1/2; eo_p = |1/2 - 2/3| = 1/6
  EXPECT_NEAR(m.at("eo_n"), 0.5, kEps);
  EXPECT_NEAR(m.at("eo_p"), 1.0 / 6.0, kEps);
  // di = |1 - (1/2)/(2/3)| = |1 - 3/4| = 1/4
  EXPECT_NEAR(m.at("di"), 0.25, kEps);

  // TPR_a0 = 2/3 (i2,i4 of i2,i3,i4), TPR_a1 = 1/2 (i6 of i6,i7) -> tpr_gap = 1/6
  // FPR_a0 = 1/2 (i1 of i0,i1),       FPR_a1 = 0   (i5 not)     -> fpr_gap = 1/2
  EXPECT_NEAR(m.at("tpr_gap"), 1.0 / 6.0, kEps);
  EXPECT_NEAR(m.at("fpr_gap"), 0.5, kEps);
  // equalized_odds = max(1/6, 1/2) = 1/2
  EXPECT_NEAR(m.at("equalized_odds"), 0.5, kEps);

  // selection a0: preds i1,i2,i4 = 3 of 5 = 3/5; a1: pred i6 = 1 of 3 = 1/3
  // dp_gap = 3/5 - 1/3 = 9/15 - 5/15 = 4/15
  EXPECT_NEAR(m.at("dp_gap"), 4.0 / 15.0, kEps);

  // worst_group_accuracy = min(1/2, 2/3, 1, 1/2) = 1/2
  EXPECT_NEAR(m.at("worst_group_accuracy"), 0.5, kEps);

  // AUC, positives {0.70,0.40,0.55,0.90,0.30}, negatives {0.10,0.60,0.20} (15 pairs).
  // negatives below each positive: 0.70->3, 0.40->2, 0.55->2, 0.90->3, 0.30->2 = 12 -> 12/15 = 0.8
  EXPECT_NEAR(m.at("auc"), 0.8, kEps);
  EXPECT_NEAR(dm::roc_auc(score, label), 0.8, kEps);

  // AUC within a0: pos {0.70,0.40,0.55}, neg {0.10,0.60}: 2 + 1 + 1 = 4 of 6 = 2/3
  // AUC within a1: pos {0.90,0.30}, neg {0.20}: 1 + 1 = 2 of 2 = 1
  // worst_group_auc = min(2/3, 1) = 2/3
  EXPECT_NEAR(m.at("worst_group_auc"), 2.0 / 3.0, kEps);
}

TEST(Metrics, RSquaredByHand) {
  // targets 1, 2, 3 (mean 2, total sum of squares 2); predictions 1, 2, 4: residual 1 -> 1 - 1/2
  EXPECT_NEAR(dne::metrics::r_squared({1, 2, 4}, {1, 2, 3}), 0.5, 1e-12);
  EXPECT_NEAR(dne::metrics::r_squared({1, 2, 3}, {1, 2, 3}), 1.0, 1e-12);
  EXPECT_NEAR(dne::metrics::r_squared({2, 2, 2}, {1, 2, 3}), 0.0, 1e-12);       // the mean itself
  EXPECT_NEAR(dne::metrics::r_squared({3, 2, 1}, {1, 2, 3}), 1.0 - 8.0 / 2.0, 1e-12);  // worse than the mean
  EXPECT_TRUE(std::isnan(dne::metrics::r_squared({1, 2}, {5, 5})));            // constant targets
  EXPECT_THROW(dne::metrics::r_squared({1, 2}, {1, 2, 3}), dne::DataError);
}

TEST(Metrics, NoiseEnergyByRegionByHand) {
  // 4 pixels: eps^2 = 1, 4, 9, 16 (total 30); SA = {0, 1}, disease = {1, 2}: overlap at pixel 1.
  const std::vector<float> eps{1.f, -2.f, 3.f, 4.f};
  const std::vector<std::uint8_t> sa{1, 1, 0, 0}, disease{0, 1, 1, 0};
  const auto m = dne::metrics::noise_energy_by_region(eps, sa, disease);
  EXPECT_DOUBLE_EQ(m.at("noise_energy_sa_region"), 5.0 / 30.0);
  EXPECT_DOUBLE_EQ(m.at("noise_energy_disease_region"), 13.0 / 30.0);
  EXPECT_DOUBLE_EQ(m.at("noise_energy_elsewhere"), 16.0 / 30.0);
  EXPECT_DOUBLE_EQ(m.at("region_area_sa"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("region_area_disease"), 0.5);
  const auto zero = dne::metrics::noise_energy_by_region({0.f, 0.f, 0.f, 0.f}, sa, disease);
  EXPECT_TRUE(std::isnan(zero.at("noise_energy_sa_region")));
  EXPECT_DOUBLE_EQ(zero.at("region_area_sa"), 0.5);
  EXPECT_THROW(dne::metrics::noise_energy_by_region(eps, {1, 0}, disease), dne::DataError);
}

TEST(Metrics, NamesAreFixedOrderAndMatchKeys) {
  const std::vector<std::string> expected = {
      "accuracy", "auc",  "acc_a0_y0", "acc_a0_y1", "acc_a1_y0",      "acc_a1_y1",
      "eo_n",     "eo_p", "di",        "tpr_gap",   "fpr_gap",        "equalized_odds",
      "dp_gap",   "worst_group_accuracy",           "worst_group_auc"};
  EXPECT_EQ(dm::classification_metric_names(), expected);

  const auto m = dm::classification_metrics({0.2, 0.8}, {0, 1}, {0, 1});
  std::set<std::string> keys;
  for (const auto& kv : m) keys.insert(kv.first);
  EXPECT_EQ(keys, std::set<std::string>(expected.begin(), expected.end()));
}

// ---------------------------------------------------------------------------------------------
// AUC
// ---------------------------------------------------------------------------------------------
TEST(RocAuc, AllScoresEqualIsHalf) {
  // Every pos/neg pair is a tie -> each counts 1/2 -> AUC = 1/2.
  EXPECT_NEAR(dm::roc_auc({0.3, 0.3, 0.3, 0.3, 0.3}, {0, 1, 1, 0, 1}), 0.5, kEps);
}

TEST(RocAuc, MixedTies) {
  // score: 0.2 0.5 0.5 0.5 0.8 0.9
  // label:  0   0   1   1   0   1
  // Average ranks: 0.2->1, 0.5 x3 -> (2+3+4)/3 = 3, 0.8->5, 0.9->6.
  // Rank sum of positives = 3 + 3 + 6 = 12; U = 12 - 3*4/2 = 6; AUC = 6 / (3*3) = 2/3.
  // Pair check: each 0.5 positive beats 0.2 (1) + ties 0.5 (1/2) = 1.5, twice = 3; 0.9 beats 3.
  EXPECT_NEAR(dm::roc_auc({0.2, 0.5, 0.5, 0.5, 0.8, 0.9}, {0, 0, 1, 1, 0, 1}), 2.0 / 3.0, kEps);
  // Order of input does not matter (same multiset, shuffled).
  EXPECT_NEAR(dm::roc_auc({0.9, 0.5, 0.8, 0.5, 0.2, 0.5}, {1, 1, 0, 0, 0, 1}), 2.0 / 3.0, kEps);
}

TEST(RocAuc, PerfectAndInverted) {
  // All positives above all negatives: 2*2 = 4 of 4 pairs -> 1.
  EXPECT_NEAR(dm::roc_auc({0.1, 0.2, 0.8, 0.9}, {0, 0, 1, 1}), 1.0, kEps);
  // All positives below all negatives: 0 of 4 pairs -> 0.
  EXPECT_NEAR(dm::roc_auc({0.1, 0.2, 0.8, 0.9}, {1, 1, 0, 0}), 0.0, kEps);
}

TEST(RocAuc, SingleClassIsNaN) {
  EXPECT_TRUE(std::isnan(dm::roc_auc({0.1, 0.7, 0.9}, {1, 1, 1})));
  EXPECT_TRUE(std::isnan(dm::roc_auc({0.1, 0.7, 0.9}, {0, 0, 0})));
  EXPECT_TRUE(std::isnan(dm::roc_auc({}, {})));

  // In classification_metrics: only negatives -> auc NaN, and no group has both classes ->
  // worst_group_auc NaN; accuracy still defined: preds 0,1 -> correct 1 of 2 = 1/2.
  const auto m = dm::classification_metrics({0.1, 0.7}, {0, 0}, {0, 1});
  EXPECT_TRUE(std::isnan(m.at("auc")));
  EXPECT_TRUE(std::isnan(m.at("worst_group_auc")));
  EXPECT_NEAR(m.at("accuracy"), 0.5, kEps);
}

// ---------------------------------------------------------------------------------------------
// Undefined cases
// ---------------------------------------------------------------------------------------------
TEST(Metrics, EmptyCellGivesNaNGapsButWorstGroupDefined) {
  // No (a=1, y=1) samples.
  //   i  a y score pred correct
  //   0  0 0 0.2   0    yes
  //   1  0 1 0.8   1    yes
  //   2  0 1 0.3   0    no
  //   3  1 0 0.6   1    no
  //   4  1 0 0.1   0    yes
  const std::vector<double> score = {0.2, 0.8, 0.3, 0.6, 0.1};
  const std::vector<int> label = {0, 1, 1, 0, 0};
  const std::vector<int> sa = {0, 0, 0, 1, 1};
  const auto m = dm::classification_metrics(score, label, sa);

  // acc_a0_y0 = 1/1 = 1, acc_a0_y1 = 1/2, acc_a1_y0 = 1/2, acc_a1_y1 = empty -> NaN
  EXPECT_NEAR(m.at("acc_a0_y0"), 1.0, kEps);
  EXPECT_NEAR(m.at("acc_a0_y1"), 0.5, kEps);
  EXPECT_NEAR(m.at("acc_a1_y0"), 0.5, kEps);
  EXPECT_TRUE(std::isnan(m.at("acc_a1_y1")));

  // Gaps needing acc_a1_y1 / TPR_a1 are NaN.
  EXPECT_TRUE(std::isnan(m.at("eo_p")));
  EXPECT_TRUE(std::isnan(m.at("di")));
  EXPECT_TRUE(std::isnan(m.at("tpr_gap")));
  EXPECT_TRUE(std::isnan(m.at("equalized_odds")));  // max(NaN, fpr_gap) -> NaN

  // eo_n = |1/2 - 1| = 1/2; FPR_a0 = 0/1 = 0, FPR_a1 = 1/2 (i3) -> fpr_gap = 1/2
  EXPECT_NEAR(m.at("eo_n"), 0.5, kEps);
  EXPECT_NEAR(m.at("fpr_gap"), 0.5, kEps);
  // selection a0 = 1/3 (i1), a1 = 1/2 (i3) -> dp_gap = 1/2 - 1/3 = 1/6
  EXPECT_NEAR(m.at("dp_gap"), 1.0 / 6.0, kEps);
  // accuracy = 3/5 (i0, i1, i4)
  EXPECT_NEAR(m.at("accuracy"), 0.6, kEps);

  // worst_group_accuracy = min over defined {1, 1/2, 1/2} = 1/2
  EXPECT_NEAR(m.at("worst_group_accuracy"), 0.5, kEps);
  // AUC a0: pos {0.8, 0.3}, neg {0.2}: 1 + 1 = 2/2 = 1; AUC a1: no positives -> NaN.
  // worst_group_auc = min over defined {1} = 1.
  EXPECT_NEAR(m.at("worst_group_auc"), 1.0, kEps);
  // Overall AUC: pos {0.8, 0.3}, neg {0.2, 0.6, 0.1}: 0.8 -> 3, 0.3 -> 2 = 5/6.
  EXPECT_NEAR(m.at("auc"), 5.0 / 6.0, kEps);
}

TEST(Metrics, ZeroDenominatorMakesDiNaN) {
  // acc_a0_y1 = 0: both a0 positives predicted negative.
  //   i  a y score pred correct
  //   0  0 0 0.1   0    yes
  //   1  0 1 0.2   0    no
  //   2  0 1 0.4   0    no
  //   3  1 0 0.3   0    yes
  //   4  1 1 0.9   1    yes
  const auto m = dm::classification_metrics({0.1, 0.2, 0.4, 0.3, 0.9}, {0, 1, 1, 0, 1},
                                            {0, 0, 0, 1, 1});
  EXPECT_NEAR(m.at("acc_a0_y1"), 0.0, kEps);
  EXPECT_NEAR(m.at("acc_a1_y1"), 1.0, kEps);
  EXPECT_TRUE(std::isnan(m.at("di")));  // 1 / 0 is undefined, not inf and not 0
  // eo_p = |1 - 0| = 1 is still defined; tpr_gap = |1 - 0| = 1; fpr_gap = |0 - 0| = 0
  EXPECT_NEAR(m.at("eo_p"), 1.0, kEps);
  EXPECT_NEAR(m.at("tpr_gap"), 1.0, kEps);
  EXPECT_NEAR(m.at("fpr_gap"), 0.0, kEps);
  EXPECT_NEAR(m.at("equalized_odds"), 1.0, kEps);
  // worst_group_accuracy = min(1, 0, 1, 1) = 0 (a real 0, not a placeholder)
  EXPECT_NEAR(m.at("worst_group_accuracy"), 0.0, kEps);
}

TEST(Metrics, MissingSaGroupMakesDpGapNaN) {
  // Only a = 0. Preds: 0.3 -> 0 (y0 ok), 0.7 -> 1 (y1 ok).
  const auto m = dm::classification_metrics({0.3, 0.7}, {0, 1}, {0, 0});
  EXPECT_TRUE(std::isnan(m.at("dp_gap")));
  EXPECT_TRUE(std::isnan(m.at("eo_n")));
  EXPECT_TRUE(std::isnan(m.at("eo_p")));
  EXPECT_TRUE(std::isnan(m.at("di")));
  EXPECT_NEAR(m.at("accuracy"), 1.0, kEps);
  EXPECT_NEAR(m.at("worst_group_accuracy"), 1.0, kEps);  // min over {1, 1}
  EXPECT_NEAR(m.at("worst_group_auc"), 1.0, kEps);       // a0 AUC = 1, a1 undefined
}

TEST(Metrics, EmptyInputIsAllNaN) {
  EXPECT_TRUE(std::isnan(dm::accuracy({}, {})));
  const auto m = dm::classification_metrics({}, {}, {});
  for (const auto& name : dm::classification_metric_names()) {
    EXPECT_TRUE(std::isnan(m.at(name))) << name;
  }
}

TEST(Metrics, ThresholdTieCountsAsPositive) {
  // score exactly 0.5 with threshold 0.5 -> pred 1.
  // label 1 -> correct, label 0 -> wrong: accuracy = 1/2.
  EXPECT_NEAR(dm::accuracy({0.5, 0.5}, {1, 0}), 0.5, kEps);
  EXPECT_NEAR(dm::accuracy({0.5}, {1}), 1.0, kEps);
  EXPECT_NEAR(dm::accuracy({0.5}, {0}), 0.0, kEps);
  // Custom threshold: 0.3 >= 0.3 -> pred 1 (correct for y=1); 0.29 < 0.3 -> pred 0 (correct y=0).
  EXPECT_NEAR(dm::accuracy({0.3, 0.29}, {1, 0}, 0.3), 1.0, kEps);

  // In classification_metrics: a0 y1 score 0.5 -> pred 1 -> acc_a0_y1 = 1; selection a0 = 1.
  // a1 y0 score 0.5 -> pred 1 -> acc_a1_y0 = 0; selection a1 = 1 -> dp_gap = 0.
  const auto m = dm::classification_metrics({0.5, 0.5}, {1, 0}, {0, 1});
  EXPECT_NEAR(m.at("acc_a0_y1"), 1.0, kEps);
  EXPECT_NEAR(m.at("acc_a1_y0"), 0.0, kEps);
  EXPECT_NEAR(m.at("dp_gap"), 0.0, kEps);
}

// ---------------------------------------------------------------------------------------------
// Malformed input -> DataError
// ---------------------------------------------------------------------------------------------
TEST(Metrics, MismatchedLengthsThrow) {
  expect_data_error([] { dm::accuracy({0.1, 0.2}, {0}); }, "length mismatch");
  expect_data_error([] { dm::roc_auc({0.1, 0.2}, {0, 1, 1}); }, "label has 3");
  expect_data_error([] { dm::classification_metrics({0.1, 0.2}, {0, 1}, {0}); }, "sa has 1");
}

TEST(Metrics, LabelOrSaOutsideBinaryThrows) {
  expect_data_error([] { dm::accuracy({0.1, 0.2}, {0, 2}); }, "label[1] = 2");
  expect_data_error([] { dm::roc_auc({0.1, 0.2}, {-1, 1}); }, "label[0] = -1");
  expect_data_error([] { dm::classification_metrics({0.1, 0.2}, {0, 1}, {0, 2}); },
                    "sa[1] = 2");
}

TEST(Metrics, NaNScoreThrows) {
  expect_data_error([] { dm::accuracy({0.1, kNaN}, {0, 1}); }, "score[1] is NaN");
  expect_data_error([] { dm::roc_auc({kNaN, 0.2}, {0, 1}); }, "score[0] is NaN");
  expect_data_error([] { dm::classification_metrics({0.1, kNaN}, {0, 1}, {0, 1}); },
                    "score[1] is NaN");
  expect_data_error([] { dm::accuracy({0.1}, {0}, kNaN); }, "threshold is NaN");
}
