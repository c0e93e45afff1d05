// synthetic: seeded, learnable images of any shape.
#include <doctest/doctest.h>

#include "data_test_util.h"

#include <cmath>

using namespace sgs_test;

TEST_CASE("synthetic: shapes, balanced labels, and determinism under its seed") {
  auto d = make_dataset("synthetic", {{"size", 12}, {"channels", 2}, {"classes", 7}, {"train_size", 70},
                                      {"test_size", 14}});
  CHECK(d->info().num_classes == 7);
  CHECK(d->train()->shape() == std::array<int64_t, 3>{2, 12, 12});
  REQUIRE(d->train()->size() == 70);
  REQUIRE(d->test()->size() == 14);
  for (int64_t i = 0; i < 70; ++i) CHECK(d->train()->label(i) == i % 7);

  auto same = make_dataset("synthetic", {{"size", 12}, {"channels", 2}, {"classes", 7}, {"train_size", 90},
                                         {"test_size", 14}});
  auto other = make_dataset("synthetic", {{"size", 12}, {"channels", 2}, {"classes", 7}, {"train_size", 70},
                                          {"test_size", 14}, {"seed", 1}});
  // Normalisation is computed from the training images, so compare raw-equivalent values via the same stats.
  auto a = fill(*d->test(), 3), b = fill(*same->test(), 3), c = fill(*other->test(), 3);
  CHECK(a.size() == b.size());
  double diff_same = 0, diff_other = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff_same += std::fabs(a[i] * d->info().std[i / 144] + d->info().mean[i / 144] -
                           (b[i] * same->info().std[i / 144] + same->info().mean[i / 144]));
    diff_other += std::fabs(a[i] - c[i]);
  }
  CHECK(diff_same < 1e-3);  // the first examples do not depend on train_size
  CHECK(diff_other > 10);   // another seed, other images
  auto d2 = make_dataset("synthetic", {{"size", 12}, {"channels", 2}, {"classes", 7}, {"train_size", 70},
                                       {"test_size", 14}});
  CHECK(fill(*d2->train(), 9) == fill(*d->train(), 9));
  CHECK(d2->info().mean == d->info().mean);
}

TEST_CASE("synthetic: default normalisation gives the training images mean 0 and std 1 per channel") {
  auto d = make_dataset("synthetic", {{"size", 16}, {"train_size", 200}, {"test_size", 0}});
  CHECK(d->test() == nullptr);
  const int64_t plane = 16 * 16;
  for (int64_t c = 0; c < 3; ++c) {
    double s = 0, s2 = 0, n = 0;
    for (int64_t i = 0; i < 200; ++i) {
      auto v = fill(*d->train(), i);
      for (int64_t j = 0; j < plane; ++j) {
        double x = v[c * plane + j];
        s += x, s2 += x * x, n += 1;
      }
    }
    CHECK(s / n == doctest::Approx(0).epsilon(1e-3).scale(1));
    CHECK(std::sqrt(s2 / n) == doctest::Approx(1).epsilon(1e-3));
  }
}

TEST_CASE("synthetic: classes are separable by oriented filters with pooling (what a conv net learns)") {
  // Quadrature energy of each class's grating (the formula in data/synthetic.cpp),
  // summed over channels; the best-matching class should be the label.
  const int64_t size = 16, classes = 10;
  auto d = make_dataset("synthetic", {{"size", size}, {"classes", classes}, {"train_size", 10}, {"test_size", 300}});
  std::vector<std::vector<double>> sin_t(classes), cos_t(classes);
  for (int64_t k = 0; k < classes; ++k) {
    const double theta = M_PI * k / classes, f = 2 * M_PI * (1.5 + k % 3) / size;
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        const double a = f * (x * std::cos(theta) + y * std::sin(theta));
        sin_t[k].push_back(std::sin(a));
        cos_t[k].push_back(std::cos(a));
      }
  }
  int correct = 0;
  for (int64_t i = 0; i < d->test()->size(); ++i) {
    int64_t label = -1;
    auto v = fill(*d->test(), i, false, 0, &label);
    int64_t best = -1;
    double best_energy = -1;
    for (int64_t k = 0; k < classes; ++k) {
      double e = 0;
      for (int64_t c = 0; c < 3; ++c) {
        double ps = 0, pc = 0;
        for (int64_t j = 0; j < size * size; ++j) {
          ps += v[c * size * size + j] * sin_t[k][j];
          pc += v[c * size * size + j] * cos_t[k][j];
        }
        e += ps * ps + pc * pc;
      }
      if (e > best_energy) best_energy = e, best = k;
    }
    correct += best == label;
  }
  CHECK(correct > 0.9 * d->test()->size());
}
