// synthetic: deterministic images a conv net can learn, generated in memory.
// Class k of K is a sinusoidal grating of orientation theta_k = pi k / K and
// f_k = 1.5 + (k mod 3) cycles per image, tinted per channel:
//   v(c, y, x) = 128 + b + A w_kc sin(2 pi f_k (x cos theta_k + y sin theta_k) / S + phi) + noise * n,
//   w_kc = 0.6 + 0.4 cos(2 pi (k / K + c / C)),
// with per-example phase phi ~ U(0, 2 pi), amplitude A ~ U(50, 90), offset
// b ~ U(-20, 20) and n ~ approximately N(0, 1), clamped to [0, 255]. Example i
// has label i mod K and its own random stream, so the first examples do not
// change with train_size. Normalisation defaults to the generated training
// set's per-channel mean and std.
#include "common.h"

#include <cmath>

namespace {

using sgs::data::ImageArray;
using sgs::data::Rng;

struct Recipe {
  int64_t size, channels, classes;
  double noise;
};

// sin and cos of the class's grating argument at each pixel.
struct ClassTable {
  std::vector<float> sin_t, cos_t;
  std::vector<float> tint;  // per channel
};

std::vector<ClassTable> class_tables(const Recipe& r) {
  std::vector<ClassTable> tables(static_cast<std::size_t>(r.classes));
  const double two_pi = 2.0 * M_PI;
  for (int64_t k = 0; k < r.classes; ++k) {
    auto& t = tables[k];
    const double theta = M_PI * static_cast<double>(k) / static_cast<double>(r.classes);
    const double freq = two_pi * (1.5 + static_cast<double>(k % 3)) / static_cast<double>(r.size);
    const double ct = std::cos(theta), st = std::sin(theta);
    t.sin_t.resize(static_cast<std::size_t>(r.size * r.size));
    t.cos_t.resize(t.sin_t.size());
    for (int64_t y = 0; y < r.size; ++y)
      for (int64_t x = 0; x < r.size; ++x) {
        const double a = freq * (static_cast<double>(x) * ct + static_cast<double>(y) * st);
        t.sin_t[y * r.size + x] = static_cast<float>(std::sin(a));
        t.cos_t[y * r.size + x] = static_cast<float>(std::cos(a));
      }
    for (int64_t c = 0; c < r.channels; ++c)
      t.tint.push_back(static_cast<float>(
          0.6 + 0.4 * std::cos(two_pi * (static_cast<double>(k) / static_cast<double>(r.classes) +
                                         static_cast<double>(c) / static_cast<double>(r.channels)))));
  }
  return tables;
}

ImageArray generate(const Recipe& r, const std::vector<ClassTable>& tables, int64_t count, uint64_t seed) {
  ImageArray out;
  out.channels = r.channels;
  out.height = r.size;
  out.width = r.size;
  out.labels.resize(static_cast<std::size_t>(count));
  out.pixels.resize(static_cast<std::size_t>(count * out.image_bytes()));
  const int64_t plane = r.size * r.size;
  const auto noise = static_cast<float>(r.noise * std::sqrt(3.0) / 65536.0);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t k = i % r.classes;
    out.labels[i] = static_cast<int32_t>(k);
    const ClassTable& t = tables[k];
    Rng rng(sgs::mix_seed(seed, {static_cast<uint64_t>(i)}));
    const double phi = rng.uniform(0, 2.0 * M_PI);
    const double amplitude = rng.uniform(50, 90);
    const auto base = static_cast<float>(128.0 + rng.uniform(-20, 20));
    uint8_t* image = out.pixels.data() + i * out.image_bytes();
    for (int64_t c = 0; c < r.channels; ++c) {
      const auto a_cos = static_cast<float>(amplitude * t.tint[c] * std::cos(phi));
      const auto a_sin = static_cast<float>(amplitude * t.tint[c] * std::sin(phi));
      uint8_t* p = image + c * plane;
      for (int64_t j = 0; j < plane; ++j) {
        // Sum of four 16-bit uniforms: mean 2, variance 1/3 (Irwin-Hall).
        const uint64_t u = rng.next();
        const auto sum = static_cast<float>((u & 0xffff) + ((u >> 16) & 0xffff) + ((u >> 32) & 0xffff) + (u >> 48));
        const float v = base + a_cos * t.sin_t[j] + a_sin * t.cos_t[j] + noise * (sum - 131070.0f);
        p[j] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f) + 0.5f);  // round half up
      }
    }
  }
  return out;
}

// Per-channel mean and std of the images, in [0, 1] units.
void moments(const ImageArray& images, std::vector<double>& mean, std::vector<double>& std) {
  const int64_t plane = images.height * images.width;
  for (int64_t c = 0; c < images.channels; ++c) {
    std::vector<uint64_t> counts(256, 0);
    for (int64_t i = 0; i < images.size(); ++i) {
      const uint8_t* p = images.image(i) + c * plane;
      for (int64_t j = 0; j < plane; ++j) ++counts[p[j]];
    }
    double n = 0, s = 0, s2 = 0;
    for (int v = 0; v < 256; ++v) {
      const double x = v / 255.0, w = static_cast<double>(counts[v]);
      n += w;
      s += w * x;
      s2 += w * x * x;
    }
    const double m = s / n;
    mean.push_back(m);
    std.push_back(std::sqrt(std::max(s2 / n - m * m, 1e-12)));
  }
}

struct SyntheticOptions : sgs::data::CommonOptions {
  int64_t size = 32, channels = 3, classes = 10, train_size = 5000, test_size = 1000;
  double noise = 32.0;
  int64_t seed = 0;
  static void declare(sgs::Declare<SyntheticOptions>& d) {
    using O = SyntheticOptions;
    d.key(&O::size, "size", "image height and width").ge(4).le(1024);
    d.key(&O::channels, "channels", "image channels").ge(1).le(16);
    d.key(&O::classes, "classes", "number of classes").ge(2).le(1000);
    d.key(&O::train_size, "train_size", "training examples").ge(1);
    d.key(&O::test_size, "test_size", "test examples; 0 = no test split").ge(0);
    d.key(&O::noise, "noise", "std of the pixel noise, in 0..255 units").ge(0);
    d.key(&O::seed, "seed", "seed of the images (the run's seed drives subset, split, order and augmentation)").ge(0);
    declare_common(d, sgs::data::Defaults{});
  }
};

std::shared_ptr<sgs::Dataset> make_synthetic(SyntheticOptions o, uint64_t run_seed) {
  Recipe r{o.size, o.channels, o.classes, o.noise};
  const auto seed = static_cast<uint64_t>(o.seed);
  auto tables = class_tables(r);
  ImageArray train = generate(r, tables, o.train_size, sgs::data::derive_seed(seed, "synthetic train"));
  ImageArray test = generate(r, tables, o.test_size, sgs::data::derive_seed(seed, "synthetic test"));
  sgs::data::Defaults d;
  moments(train, d.mean, d.std);
  sgs::data::resolve_normalisation(o, d, r.channels);
  sgs::DatasetInfo info;
  info.name = "synthetic";
  info.channels = r.channels;
  info.height = r.size;
  info.width = r.size;
  info.num_classes = r.classes;
  std::shared_ptr<const sgs::data::ExampleSource> test_source;
  if (test.size() > 0) test_source = std::make_shared<sgs::data::ArraySource>(std::move(test));
  return sgs::data::build_dataset(info, std::make_shared<sgs::data::ArraySource>(std::move(train)), test_source,
                                  o, run_seed, o.path);
}

}  // namespace

SGS_REGISTER(sgs::DatasetKind, synthetic, "seeded class-dependent gratings plus noise, generated in memory",
             SyntheticOptions,
             [](const SyntheticOptions& o, uint64_t seed) { return make_synthetic(o, seed); });
