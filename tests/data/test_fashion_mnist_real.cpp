// The installed Fashion-MNIST, when present: 60000/10000 images of 28x28, 10 classes.
#include <doctest/doctest.h>

#include "data_test_util.h"
#include "support/support.h"

#include <cmath>

TEST_CASE("fashion_mnist: the real train and test sets load (skipped when absent)") {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (!sgs_test::fs::exists(root + "/train-images-idx3-ubyte.gz") &&
      !sgs_test::fs::exists(root + "/train-images-idx3-ubyte"))
    SGS_SKIP(root << " is absent (Debian package dataset-fashion-mnist)");
  auto d = sgs_test::make_dataset("fashion_mnist", sgs::Json::object());
  CHECK(d->info().num_classes == 10);
  CHECK(d->train()->shape() == std::array<int64_t, 3>{1, 28, 28});
  REQUIRE(d->train()->size() == 60000);
  REQUIRE(d->test()->size() == 10000);
  std::vector<int64_t> train_counts(10, 0), test_counts(10, 0);
  for (int64_t i = 0; i < 60000; ++i) ++train_counts[d->train()->label(i)];
  for (int64_t i = 0; i < 10000; ++i) ++test_counts[d->test()->label(i)];
  CHECK(train_counts == std::vector<int64_t>(10, 6000));
  CHECK(test_counts == std::vector<int64_t>(10, 1000));
  // With its default normalisation, the first 2000 training images have mean ~0 and std ~1.
  double s = 0, s2 = 0, n = 0;
  for (int64_t i = 0; i < 2000; ++i)
    for (float v : sgs_test::fill(*d->train(), i)) s += v, s2 += double(v) * v, n += 1;
  CHECK(std::fabs(s / n) < 0.05);
  CHECK(std::sqrt(s2 / n - (s / n) * (s / n)) == doctest::Approx(1.0).epsilon(0.05));
}
