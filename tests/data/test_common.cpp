// The options every dataset plugin shares: keys, normalisation, augmentation,
// subset and val split.
#include <doctest/doctest.h>

#include "data/common.h"
#include "data_test_util.h"

#include <sgs/errors.h>
#include <sgs/version.h>

#include <algorithm>
#include <cmath>
#include <set>

using sgs::data::Augmenter;
using sgs::data::CommonOptions;
using sgs::data::Rng;

namespace {

CommonOptions plain_options(int64_t channels) {
  CommonOptions o;
  o.mean.assign(static_cast<std::size_t>(channels), 0.5);
  o.std.assign(static_cast<std::size_t>(channels), 0.25);
  return o;
}

float norm(int v) { return static_cast<float>((v / 255.0 - 0.5) / 0.25); }

// A 2-channel 6x5 image with distinct non-zero pixels, planar.
constexpr int64_t kC = 2, kH = 6, kW = 5;
int pixel(int64_t c, int64_t y, int64_t x) { return static_cast<int>(10 + 100 * c + 12 * y + 2 * x); }
std::vector<uint8_t> test_image() {
  std::vector<uint8_t> img;
  for (int64_t c = 0; c < kC; ++c)
    for (int64_t y = 0; y < kH; ++y)
      for (int64_t x = 0; x < kW; ++x) img.push_back(static_cast<uint8_t>(pixel(c, y, x)));
  return img;
}

std::vector<float> run(const Augmenter& a, const std::vector<uint8_t>& img, bool augment, uint64_t seed) {
  std::vector<float> out(static_cast<std::size_t>(kC * kH * kW), -99.0f);
  Rng rng(seed);
  a.apply(img.data(), Augmenter::planar(kH, kW), augment, rng, out.data());
  return out;
}

float value_at(const std::vector<float>& v, int64_t c, int64_t y, int64_t x) { return v[(c * kH + y) * kW + x]; }

}  // namespace

TEST_CASE("data common: every dataset plugin declares the common keys") {
  const auto& reg = sgs::Registry::global();
  std::vector<std::string> expected = {"cifar10", "cifar100", "fashion_mnist", "mnist", "synthetic"};
  if (SGS_WITH_OPENCV) expected.insert(expected.begin() + 3, "image_folder");  // needs OpenCV
  CHECK(reg.names("dataset") == expected);
  for (const auto& name : reg.names("dataset")) {
    const auto& schema = reg.get("dataset", name).schema;
    for (const auto& key : sgs::data::common_keys({})) {
      INFO(name << " lacks " << key.name);
      CHECK(sgs::find_key(schema, key.name) != nullptr);
    }
  }
}

TEST_CASE("augment: without augmentation, pixels are (v/255 - mean)/std per channel") {
  auto img = test_image();
  CommonOptions o = plain_options(kC);
  o.mean = {0.5, 0.1};
  o.std = {0.25, 0.2};
  o.random_crop_padding = 4;
  o.hflip = true;
  o.cutout = 3;
  Augmenter a(o, kC, kH, kW);
  auto out = run(a, img, false, 7);
  for (int64_t c = 0; c < kC; ++c)
    for (int64_t y = 0; y < kH; ++y)
      for (int64_t x = 0; x < kW; ++x)
        CHECK(value_at(out, c, y, x) == doctest::Approx((pixel(c, y, x) / 255.0 - o.mean[c]) / o.std[c]).epsilon(1e-6));
}

TEST_CASE("augment: random crop shifts by at most the padding and pads with raw zero") {
  auto img = test_image();
  CommonOptions o = plain_options(kC);
  o.random_crop_padding = 2;
  Augmenter a(o, kC, kH, kW);
  std::set<std::pair<int64_t, int64_t>> shifts;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    auto out = run(a, img, true, seed);
    // Find the shift (dy, dx) that explains the output: out(y, x) = img(y + dy, x + dx), or norm(0).
    bool found = false;
    for (int64_t dy = -2; dy <= 2 && !found; ++dy)
      for (int64_t dx = -2; dx <= 2 && !found; ++dx) {
        bool ok = true;
        for (int64_t c = 0; c < kC && ok; ++c)
          for (int64_t y = 0; y < kH && ok; ++y)
            for (int64_t x = 0; x < kW && ok; ++x) {
              int64_t sy = y + dy, sx = x + dx;
              bool inside = sy >= 0 && sy < kH && sx >= 0 && sx < kW;
              ok = value_at(out, c, y, x) == (inside ? norm(pixel(c, sy, sx)) : norm(0));
            }
        if (ok) {
          found = true;
          shifts.insert({dy, dx});
        }
      }
    INFO("seed " << seed);
    CHECK(found);
  }
  CHECK(shifts.size() == 25);  // every offset of [-2, 2]^2 occurs
  CHECK(norm(0) == doctest::Approx(-2.0));
}

TEST_CASE("augment: horizontal flip mirrors half of the time") {
  auto img = test_image();
  CommonOptions o = plain_options(kC);
  o.hflip = true;
  Augmenter a(o, kC, kH, kW);
  int flipped = 0;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    auto out = run(a, img, true, seed);
    bool same = true, mirrored = true;
    for (int64_t c = 0; c < kC; ++c)
      for (int64_t y = 0; y < kH; ++y)
        for (int64_t x = 0; x < kW; ++x) {
          same = same && value_at(out, c, y, x) == norm(pixel(c, y, x));
          mirrored = mirrored && value_at(out, c, y, x) == norm(pixel(c, y, kW - 1 - x));
        }
    CHECK(same != mirrored);
    flipped += mirrored;
  }
  CHECK(flipped > 150);
  CHECK(flipped < 250);
}

TEST_CASE("augment: flip and crop compose as crop-then-flip, and an interleaved layout reads the same image") {
  auto img = test_image();
  // The same image stored HWC.
  std::vector<uint8_t> hwc;
  for (int64_t y = 0; y < kH; ++y)
    for (int64_t x = 0; x < kW; ++x)
      for (int64_t c = 0; c < kC; ++c) hwc.push_back(static_cast<uint8_t>(pixel(c, y, x)));
  CommonOptions o = plain_options(kC);
  o.random_crop_padding = 3;
  o.hflip = true;
  o.cutout = 2;
  Augmenter a(o, kC, kH, kW);
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto planar = run(a, img, true, seed);
    std::vector<float> inter(planar.size());
    Rng rng(seed);
    a.apply(hwc.data(), {1, kW * kC, kC}, true, rng, inter.data());
    CHECK(planar == inter);
    // Every output value is a pixel of the same channel, the padding, or cutout's 0.
    for (int64_t c = 0; c < kC; ++c)
      for (int64_t y = 0; y < kH; ++y)
        for (int64_t x = 0; x < kW; ++x) {
          float v = value_at(planar, c, y, x);
          bool ok = v == 0.0f || v == norm(0);
          for (int64_t sy = 0; sy < kH && !ok; ++sy)
            for (int64_t sx = 0; sx < kW && !ok; ++sx) ok = v == norm(pixel(c, sy, sx));
          CHECK(ok);
        }
  }
}

TEST_CASE("augment: cutout zeroes an L x L square after normalisation, clipped at the borders") {
  constexpr int64_t h = 16, w = 16, L = 6;
  std::vector<uint8_t> img(static_cast<std::size_t>(3 * h * w), 200);  // normalises to 2.1373, never 0
  CommonOptions o = plain_options(3);
  o.cutout = L;
  Augmenter a(o, 3, h, w);
  int full = 0, clipped = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    std::vector<float> out(img.size());
    Rng rng(seed);
    a.apply(img.data(), Augmenter::planar(h, w), true, rng, out.data());
    int64_t y0 = h, y1 = -1, x0 = w, x1 = -1, zeros = 0;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        bool zero = out[y * w + x] == 0.0f;
        for (int64_t c = 1; c < 3; ++c) CHECK((out[(c * h + y) * w + x] == 0.0f) == zero);
        if (!zero) {
          CHECK(out[y * w + x] == doctest::Approx((200 / 255.0 - 0.5) / 0.25));
          continue;
        }
        ++zeros;
        y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
      }
    REQUIRE(zeros > 0);
    CHECK(zeros == (y1 - y0 + 1) * (x1 - x0 + 1));  // a rectangle
    CHECK(y1 - y0 + 1 <= L);
    CHECK(x1 - x0 + 1 <= L);
    bool touches = y0 == 0 || x0 == 0 || y1 == h - 1 || x1 == w - 1;
    if (zeros == L * L) ++full;
    else {
      CHECK(touches);
      ++clipped;
    }
  }
  CHECK(full > 50);
  CHECK(clipped > 50);
}

TEST_CASE("split: subset takes the first N or a seeded random N, val is a seeded disjoint fraction") {
  CommonOptions o;
  o.subset = 50;
  auto first = sgs::data::split_indices(100, o, 1, "dataset");
  CHECK(first.val.empty());
  REQUIRE(first.train.size() == 50);
  CHECK(first.train.front() == 0);
  CHECK(first.train.back() == 49);

  o.subset_random = true;
  auto r1 = sgs::data::split_indices(100, o, 1, "dataset");
  auto r1_again = sgs::data::split_indices(100, o, 1, "dataset");
  auto r2 = sgs::data::split_indices(100, o, 2, "dataset");
  CHECK(r1.train == r1_again.train);
  CHECK(r1.train != r2.train);
  CHECK(r1.train != first.train);
  CHECK(std::set<int64_t>(r1.train.begin(), r1.train.end()).size() == 50);
  CHECK(r1.train.back() < 100);

  o.val_fraction = 0.2;
  auto v = sgs::data::split_indices(100, o, 1, "dataset");
  CHECK(v.val.size() == 10);
  CHECK(v.train.size() == 40);
  std::set<int64_t> all(v.train.begin(), v.train.end());
  all.insert(v.val.begin(), v.val.end());
  CHECK(all == std::set<int64_t>(r1.train.begin(), r1.train.end()));  // val carved out of the subset
  CHECK(v.val == sgs::data::split_indices(100, o, 1, "dataset").val);
  CHECK(v.val != sgs::data::split_indices(100, o, 3, "dataset").val);

  CommonOptions whole;
  whole.val_fraction = 0.2;
  auto w = sgs::data::split_indices(1000, whole, 5, "dataset");
  CHECK(w.val.size() == 200);
  CHECK(w.train.size() == 800);
  CHECK(std::is_sorted(w.train.begin(), w.train.end()));
}

TEST_CASE("split: a subset larger than the set or a split leaving nothing is a config error") {
  CommonOptions o;
  o.subset = 101;
  CHECK_THROWS_WITH_AS(sgs::data::split_indices(100, o, 0, "dataset"),
                       "dataset.subset: 101 is more than the 100 training examples", sgs::ConfigError);
  CommonOptions v;
  v.val_fraction = 0.9;
  CHECK_THROWS_WITH_AS(sgs::data::split_indices(1, v, 0, "dataset"), doctest::Contains("dataset.val_fraction"),
                       sgs::ConfigError);
  CHECK(sgs::data::split_indices(10, v, 0, "dataset").val.size() == 9);
}

TEST_CASE("data common: mean/std of the wrong length and bad key values are config errors") {
  CHECK_THROWS_WITH_AS(sgs_test::make_dataset("synthetic", {{"train_size", 10}, {"mean", {0.5}}}),
                       "dataset.mean: expected 3 value(s), one per channel, got [0.5]", sgs::ConfigError);
  CHECK_THROWS_WITH_AS(sgs_test::make_dataset("synthetic", {{"std", {1.0, 0.0, 1.0}}}),
                       "dataset.std[1]: must be > 0, got 0.0", sgs::ConfigError);
  CHECK_THROWS_WITH_AS(sgs_test::make_dataset("synthetic", {{"val_fraction", 1.0}}),
                       "dataset.val_fraction: must be < 1, got 1.0", sgs::ConfigError);
  CHECK_THROWS_WITH_AS(sgs_test::make_dataset("synthetic", {{"cutuot", 8}}),
                       doctest::Contains("dataset.cutuot: unknown key; did you mean 'cutout'?"), sgs::ConfigError);
}

TEST_CASE("data common: the rng is uniform enough and reproducible") {
  Rng a(42), b(42);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 10000; ++i) {
    int64_t v = a.below(10);
    CHECK(v == b.below(10));
    REQUIRE(v >= 0);
    REQUIRE(v < 10);
    ++counts[v];
  }
  for (int c : counts) CHECK(std::abs(c - 1000) < 150);
  CHECK(sgs::data::derive_seed(1, "subset") != sgs::data::derive_seed(1, "val"));
  CHECK(sgs::mix_seed(1, {0}) != sgs::mix_seed(1, {1}));
}

TEST_CASE("seed: mix_seed is SplitMix64 chained over the values (pinned: data orders must not change silently)") {
  CHECK(sgs::splitmix64(0) == 0xe220a8397b1dcdafULL);  // SplitMix64's first output from state 0
  CHECK(sgs::mix_seed(7, {3, 5}) == 0xf647de43e60ec467ULL);
  CHECK(sgs::mix_seed(7, {3, 5}) == sgs::splitmix64(sgs::splitmix64(sgs::splitmix64(7) ^ 3) ^ 5));
  sgs::data::Rng rng(11);  // the data's generator steps the same function
  CHECK(rng.next() == sgs::splitmix64(11));
  CHECK(rng.next() == sgs::splitmix64(11 + 0x9e3779b97f4a7c15ULL));
}
