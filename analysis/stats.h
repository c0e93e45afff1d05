// Is one method's final accuracy different from another's by more than the
// seeds' noise? Two-sided t-tests with 95 % confidence intervals, the t
// distribution from Boost.Math:
//  - paired, over the seeds both groups ran (in sgs the same seed means the
//    same initial weights, data order and augmentation):
//      d_i = a_i - b_i, n pairs, mean d, sample std s_d,
//      t = mean / (s_d / sqrt n), df = n - 1;
//  - Welch, when they share no seed:
//      mean a - mean b, se^2 = s_a^2 / n_a + s_b^2 / n_b, t = diff / se,
//      df = se^4 / ((s_a^2 / n_a)^2 / (n_a - 1) + (s_b^2 / n_b)^2 / (n_b - 1));
//  interval diff ± t_{0.975, df} * se, p = 2 P(T_df > |t|).
// Holm's step-down adjustment holds the family-wise error over the
// comparisons of one table.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace sgs::analysis {

struct Comparison {
  std::string test;  // "paired t", "Welch t", or "" when no test could be made
  std::string note;  // why not (e.g. "one seed"), or what was paired
  int64_t n = 0;     // pairs (paired) or runs of the group compared (Welch)
  int64_t n_reference = 0;  // runs of the reference (Welch; = n when paired)
  double difference = NAN;  // mean difference, group minus reference
  double ci_low = NAN, ci_high = NAN;
  double t = NAN, df = NAN, p = NAN;
  double p_holm = NAN;  // set by holm()
  bool tested() const { return !test.empty(); }
};

// d_i = a[i] - b[i]. Fewer than 2 pairs: the difference only, no test.
// All differences equal: no variance, no test (said so in `note`).
Comparison paired_t(const std::vector<double>& a, const std::vector<double>& b);
// Fewer than 2 values on either side: the difference only, no test.
Comparison welch_t(const std::vector<double>& a, const std::vector<double>& b);

// Holm-adjusted p-values of the tested comparisons (the others untouched):
// with the m p-values sorted, p_(i) * (m - i + 1), made non-decreasing, at most 1.
void holm(std::vector<Comparison*>& comparisons);

// The half width of the 95 % t interval of the mean of `values`:
// t_{0.975, n-1} * s / sqrt(n); NaN for fewer than 2 values.
double mean_interval_half_width(const std::vector<double>& values);

}  // namespace sgs::analysis
