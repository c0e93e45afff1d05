#include "stats.h"

#include <boost/math/distributions/students_t.hpp>

#include <algorithm>
#include <numeric>

namespace sgs::analysis {

namespace {

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// Sample variance (n - 1).
double variance_of(const std::vector<double>& v, double mean) {
  double s = 0;
  for (double x : v) s += (x - mean) * (x - mean);
  return s / static_cast<double>(v.size() - 1);
}

// The interval, t and two-sided p for a difference with standard error `se`.
void finish(Comparison& c, double se) {
  if (!(se > 0) || !std::isfinite(se) || !(c.df > 0)) {
    c.test.clear();
    c.note = "no spread between the seeds: no test";
    return;
  }
  boost::math::students_t dist(c.df);
  const double q = boost::math::quantile(dist, 0.975);
  c.ci_low = c.difference - q * se;
  c.ci_high = c.difference + q * se;
  c.t = c.difference / se;
  c.p = 2 * boost::math::cdf(boost::math::complement(dist, std::abs(c.t)));
}

}  // namespace

Comparison paired_t(const std::vector<double>& a, const std::vector<double>& b) {
  Comparison c;
  const size_t n = std::min(a.size(), b.size());
  c.n = c.n_reference = static_cast<int64_t>(n);
  if (n == 0) {
    c.note = "no pairs";
    return c;
  }
  std::vector<double> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
  c.difference = mean_of(d);
  if (n < 2) {
    c.note = "one shared seed: no interval";
    return c;
  }
  c.test = "paired t";
  c.df = static_cast<double>(n - 1);
  finish(c, std::sqrt(variance_of(d, c.difference) / static_cast<double>(n)));
  return c;
}

Comparison welch_t(const std::vector<double>& a, const std::vector<double>& b) {
  Comparison c;
  c.n = static_cast<int64_t>(a.size());
  c.n_reference = static_cast<int64_t>(b.size());
  if (a.empty() || b.empty()) {
    c.note = "no runs";
    return c;
  }
  const double ma = mean_of(a), mb = mean_of(b);
  c.difference = ma - mb;
  if (a.size() < 2 || b.size() < 2) {
    c.note = "one seed: no interval";
    return c;
  }
  const double va = variance_of(a, ma) / static_cast<double>(a.size());
  const double vb = variance_of(b, mb) / static_cast<double>(b.size());
  c.test = "Welch t";
  const double se2 = va + vb;
  c.df = se2 * se2 / (va * va / static_cast<double>(a.size() - 1) + vb * vb / static_cast<double>(b.size() - 1));
  finish(c, std::sqrt(se2));
  return c;
}

double mean_interval_half_width(const std::vector<double>& values) {
  const size_t n = values.size();
  if (n < 2) return NAN;
  const double sd = std::sqrt(variance_of(values, mean_of(values)));
  boost::math::students_t dist(static_cast<double>(n - 1));
  return boost::math::quantile(dist, 0.975) * sd / std::sqrt(static_cast<double>(n));
}

void holm(std::vector<Comparison*>& comparisons) {
  std::vector<Comparison*> tested;
  for (auto* c : comparisons)
    if (c->tested() && std::isfinite(c->p)) tested.push_back(c);
  std::stable_sort(tested.begin(), tested.end(), [](const Comparison* x, const Comparison* y) { return x->p < y->p; });
  const double m = static_cast<double>(tested.size());
  double running = 0;
  for (size_t i = 0; i < tested.size(); ++i) {
    running = std::max(running, std::min(1.0, (m - static_cast<double>(i)) * tested[i]->p));
    tested[i]->p_holm = running;
  }
}

}  // namespace sgs::analysis
