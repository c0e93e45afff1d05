// What every dataset plugin shares: the common config keys (subset, val
// split, normalisation, training augmentation), their one implementation,
// and the seeded random numbers every draw comes from.
//
// A plugin describes its examples as an ExampleSource (decoded uint8 pixels
// in, normalised float [C, H, W] out) and hands its train and test sources to
// build_dataset(), which applies subset/val_fraction and wraps them as Splits.
#pragma once

#include <sgs/dataset.h>
#include <sgs/errors.h>
#include <sgs/options.h>
#include <sgs/seed.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sgs::data {

// splitmix64 (Steele, Lea & Flood 2014): tiny, fast, and the same stream on
// every platform (unlike std:: distributions).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    const uint64_t out = sgs::splitmix64(state_);
    state_ += 0x9e3779b97f4a7c15ULL;
    return out;
  }
  // Uniform in [0, n), n >= 1 (multiply-shift; bias below n / 2^64).
  int64_t below(int64_t n) {
    return static_cast<int64_t>((static_cast<unsigned __int128>(next()) * static_cast<uint64_t>(n)) >> 64);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

 private:
  uint64_t state_;
};

// A seed derived from `seed` for the purpose named by `tag` (e.g. "subset").
inline uint64_t derive_seed(uint64_t seed, const char* tag) { return sgs::mix_seed(seed ^ sgs::seed_tag(tag)); }

// Per-dataset defaults of the common keys.
struct Defaults {
  std::vector<double> mean, std;  // per channel; empty: computed by the plugin
  int64_t random_crop_padding = 0;
  bool hflip = false;
};

// "per-channel normalisation mean; [] = dataset default (0.286)" and the like.
std::string normalisation_help(const char* what, const std::vector<double>& defaults);

// The keys every dataset has; a dataset's options derive from this and
// declare them with declare_common, after their own keys.
struct CommonOptions : PluginOptions {
  int64_t subset = 0;
  bool subset_random = false;
  double val_fraction = 0.0;
  std::vector<double> mean, std;  // as given ([] = the dataset's default); resolve_normalisation fills them
  int64_t random_crop_padding = 0;
  bool hflip = false;
  int64_t cutout = 0;

  CommonOptions() = default;
  explicit CommonOptions(const Defaults& d) : random_crop_padding(d.random_crop_padding), hflip(d.hflip) {}

  template <class T>
  static void declare_common(Declare<T>& d, const Defaults& defaults) {
    using C = CommonOptions;
    d.key(&C::subset, "subset", "use N training examples (before the val carve-out); 0 = all").ge(0);
    d.key(&C::subset_random, "subset_random", "subset draws a seeded random N instead of the first N");
    d.key(&C::val_fraction, "val_fraction", "fraction of the training set held out as a seeded val split").ge(0).lt(1);
    d.key(&C::mean, "mean", normalisation_help("mean", defaults.mean));
    d.key(&C::std, "std", normalisation_help("std", defaults.std)).gt(0);
    d.key(&C::random_crop_padding, "random_crop_padding",
          "training: random crop of the image zero-padded by this many pixels; 0 = off")
        .ge(0);
    d.key(&C::hflip, "hflip", "training: random horizontal flip");
    d.key(&C::cutout, "cutout", "training: side of a square zeroed after normalisation (Cutout); 0 = off").ge(0);
  }
};

// A dataset read from a folder: "root" and the common keys.
struct FolderOptions : CommonOptions {
  std::string root;
  using CommonOptions::CommonOptions;
};

// The common keys alone (for tests and docs).
Schema common_keys(const Defaults& defaults);

// An empty mean/std takes the default. Throws ConfigError naming the key when
// mean/std do not have `channels` values.
void resolve_normalisation(CommonOptions& options, const Defaults& defaults, int64_t channels);

// Normalisation and the training transforms of uint8 images of exactly
// [C, H, W], written as float into a [C, H, W] buffer. With augment, in this
// order (torchvision's RandomCrop(padding), RandomHorizontalFlip, ToTensor,
// Normalize, then Cutout): a random crop of the image zero-padded by
// `random_crop_padding` pixels (zero in raw pixel values), a flip with
// probability 1/2, normalisation (v/255 - mean)/std, and a cutout square of
// side `cutout` whose centre is uniform over the image, clipped at the
// borders and set to 0 (DeVries & Taylor 2017).
class Augmenter {
 public:
  // Element (c, y, x) of a source image is at src[c*c_stride + y*y_stride + x*x_stride].
  struct Layout {
    std::ptrdiff_t c_stride, y_stride, x_stride;
  };
  static Layout planar(int64_t height, int64_t width) { return {height * width, width, 1}; }

  Augmenter(const CommonOptions& options, int64_t channels, int64_t height, int64_t width);
  void apply(const uint8_t* src, Layout layout, bool augment, Rng& rng, float* out) const;

 private:
  int64_t channels_, height_, width_;
  int64_t padding_, cutout_;
  bool hflip_;
  std::vector<float> lut_;  // [C][256]: normalised value of each raw byte
};

// The examples of one on-disk split (e.g. all 60000 training images).
class ExampleSource {
 public:
  virtual ~ExampleSource() = default;
  virtual int64_t size() const = 0;
  virtual int64_t label(int64_t index) const = 0;
  // Writes example `index` through `augmenter` into `out`; draws from `rng`.
  // Throws DataError naming the file for an unreadable example.
  virtual void fill(int64_t index, bool augment, Rng& rng, const Augmenter& augmenter,
                    float* out) const = 0;
};

// Decoded images held in memory, planar uint8 [N, C, H, W].
struct ImageArray {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t image_bytes() const { return channels * height * width; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_bytes(); }
};

class ArraySource : public ExampleSource {
 public:
  explicit ArraySource(ImageArray images) : images_(std::move(images)) {}
  int64_t size() const override { return images_.size(); }
  int64_t label(int64_t index) const override { return images_.labels[index]; }
  void fill(int64_t index, bool augment, Rng& rng, const Augmenter& augmenter, float* out) const override;
  const ImageArray& images() const { return images_; }

 private:
  ImageArray images_;
};

// Indices into the on-disk training set: the subset, then the val carve-out.
struct TrainValIndices {
  std::vector<int64_t> train, val;  // ascending
};

// subset (first N, or a random N under subset_random) of [0, n), then a
// random val_fraction of those as val. Draws from derive_seed(seed, ...).
// Throws ConfigError (naming `path`.subset / .val_fraction) when the subset
// is larger than the set or the split leaves no training example.
TrainValIndices split_indices(int64_t n, const CommonOptions& options, uint64_t seed,
                              const std::string& path);

// The dataset made of a training source (subset and val carved out as the
// options say) and an optional test source. `info` gives the name, shape and
// classes; its mean/std are set from `options`.
std::shared_ptr<Dataset> build_dataset(DatasetInfo info, std::shared_ptr<const ExampleSource> train,
                                       std::shared_ptr<const ExampleSource> test,
                                       const CommonOptions& options, uint64_t seed,
                                       const std::string& path);

// "<dataset>: <file>: <what>" as a DataError.
[[noreturn]] void data_error(const std::string& dataset, const std::string& file, const std::string& what);

// The whole content of a file, gunzipped when it is gzip (zlib reads plain
// files unchanged). Throws DataError when it is missing or unreadable.
std::vector<uint8_t> read_file(const std::string& dataset, const std::string& path);

// Throws DataError "<dataset>: <path>: missing directory" unless it is one.
void require_directory(const std::string& dataset, const std::string& path);

}  // namespace sgs::data
