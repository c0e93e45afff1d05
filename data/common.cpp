#include "common.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace sgs::data {


namespace {

std::string list_text(const std::vector<double>& v) {
  std::ostringstream s;
  s << "[";
  for (std::size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

std::string default_text(const std::vector<double>& v) {
  return v.empty() ? "computed from the training images" : list_text(v);
}

}  // namespace

std::string normalisation_help(const char* what, const std::vector<double>& defaults) {
  return std::string("per-channel normalisation ") + what + "; [] = dataset default " + default_text(defaults);
}

Schema common_keys(const Defaults& defaults) {
  Declare<CommonOptions> d{CommonOptions(defaults)};
  CommonOptions::declare_common(d, defaults);
  return d.schema();
}

void resolve_normalisation(CommonOptions& o, const Defaults& d, int64_t channels) {
  auto per_channel = [&](std::vector<double>& v, const char* key, const std::vector<double>& def) {
    if (v.empty()) v = def;
    if (static_cast<int64_t>(v.size()) != channels)
      throw ConfigError(o.where(key) + ": expected " + std::to_string(channels) + " value(s), one per channel, got " +
                        list_text(v));
  };
  per_channel(o.mean, "mean", d.mean);
  per_channel(o.std, "std", d.std);
}

// ---- Augmenter ----

Augmenter::Augmenter(const CommonOptions& o, int64_t channels, int64_t height, int64_t width)
    : channels_(channels),
      height_(height),
      width_(width),
      padding_(o.random_crop_padding),
      cutout_(o.cutout),
      hflip_(o.hflip),
      lut_(static_cast<std::size_t>(channels) * 256) {
  for (int64_t c = 0; c < channels; ++c)
    for (int v = 0; v < 256; ++v)
      lut_[c * 256 + v] = static_cast<float>((v / 255.0 - o.mean[c]) / o.std[c]);
}

void Augmenter::apply(const uint8_t* src, Layout layout, bool augment, Rng& rng, float* out) const {
  const int64_t h = height_, w = width_;
  int64_t dy = 0, dx = 0;
  bool flip = false;
  if (augment && padding_ > 0) {
    dy = rng.below(2 * padding_ + 1) - padding_;
    dx = rng.below(2 * padding_ + 1) - padding_;
  }
  if (augment && hflip_) flip = rng.below(2) == 1;
  // Output (y, x) reads source (y + dy, sx) with sx = x + dx, or w - 1 - x + dx
  // when flipped; outside the source it is the zero padding.
  const int64_t x_lo = std::clamp<int64_t>(flip ? dx : -dx, 0, w);
  const int64_t x_hi = std::clamp<int64_t>(flip ? w + dx : w - dx, x_lo, w);
  for (int64_t c = 0; c < channels_; ++c) {
    const float* lut = lut_.data() + c * 256;
    const float pad = lut[0];
    const uint8_t* plane = src + c * layout.c_stride;
    float* out_plane = out + c * h * w;
    for (int64_t y = 0; y < h; ++y) {
      float* row = out_plane + y * w;
      const int64_t sy = y + dy;
      if (sy < 0 || sy >= h) {
        std::fill(row, row + w, pad);
        continue;
      }
      const uint8_t* src_row = plane + sy * layout.y_stride;
      std::fill(row, row + x_lo, pad);
      if (!flip) {
        const uint8_t* s = src_row + (x_lo + dx) * layout.x_stride;
        if (layout.x_stride == 1)
          for (int64_t x = x_lo; x < x_hi; ++x) row[x] = lut[*s++];
        else
          for (int64_t x = x_lo; x < x_hi; ++x, s += layout.x_stride) row[x] = lut[*s];
      } else {
        for (int64_t x = x_lo; x < x_hi; ++x) row[x] = lut[src_row[(w - 1 - x + dx) * layout.x_stride]];
      }
      std::fill(row + x_hi, row + w, pad);
    }
  }
  if (augment && cutout_ > 0) {
    const int64_t cy = rng.below(h), cx = rng.below(w);
    const int64_t y0 = std::max<int64_t>(0, cy - cutout_ / 2), y1 = std::min<int64_t>(h, cy - cutout_ / 2 + cutout_);
    const int64_t x0 = std::max<int64_t>(0, cx - cutout_ / 2), x1 = std::min<int64_t>(w, cx - cutout_ / 2 + cutout_);
    for (int64_t c = 0; c < channels_; ++c)
      for (int64_t y = y0; y < y1; ++y) {
        float* row = out + (c * h + y) * w;
        std::fill(row + x0, row + x1, 0.0f);
      }
  }
}

void ArraySource::fill(int64_t index, bool augment, Rng& rng, const Augmenter& augmenter, float* out) const {
  augmenter.apply(images_.image(index), Augmenter::planar(images_.height, images_.width), augment, rng, out);
}

// ---- subset and val split ----

TrainValIndices split_indices(int64_t n, const CommonOptions& o, uint64_t seed, const std::string& path) {
  auto where = [&](const char* key) { return path.empty() ? std::string(key) : path + "." + key; };
  if (o.subset > n)
    throw ConfigError(where("subset") + ": " + std::to_string(o.subset) + " is more than the " + std::to_string(n) +
                      " training examples");
  std::vector<int64_t> chosen(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) chosen[i] = i;
  if (o.subset > 0) {
    if (o.subset_random) {
      Rng rng(derive_seed(seed, "subset"));
      for (int64_t i = 0; i < o.subset; ++i) std::swap(chosen[i], chosen[i + rng.below(n - i)]);
    }
    chosen.resize(static_cast<std::size_t>(o.subset));
    std::sort(chosen.begin(), chosen.end());
  }
  const auto m = static_cast<int64_t>(chosen.size());
  TrainValIndices out;
  if (o.val_fraction <= 0) {
    out.train = std::move(chosen);
    return out;
  }
  int64_t n_val = std::max<int64_t>(1, std::llround(o.val_fraction * static_cast<double>(m)));
  if (n_val >= m)
    throw ConfigError(where("val_fraction") + ": " + std::to_string(o.val_fraction) + " of " + std::to_string(m) +
                      " examples leaves none for training");
  Rng rng(derive_seed(seed, "val"));
  for (int64_t i = 0; i < n_val; ++i) std::swap(chosen[i], chosen[i + rng.below(m - i)]);
  out.val.assign(chosen.begin(), chosen.begin() + n_val);
  out.train.assign(chosen.begin() + n_val, chosen.end());
  std::sort(out.val.begin(), out.val.end());
  std::sort(out.train.begin(), out.train.end());
  return out;
}

// ---- splits and the dataset ----

namespace {

class SourceSplit : public Split {
 public:
  SourceSplit(std::shared_ptr<const ExampleSource> source, std::vector<int64_t> indices,
              std::shared_ptr<const Augmenter> augmenter, std::array<int64_t, 3> shape)
      : source_(std::move(source)), indices_(std::move(indices)), augmenter_(std::move(augmenter)), shape_(shape) {}
  SourceSplit(std::shared_ptr<const ExampleSource> source, std::shared_ptr<const Augmenter> augmenter,
              std::array<int64_t, 3> shape)
      : source_(std::move(source)), all_(true), augmenter_(std::move(augmenter)), shape_(shape) {}

  int64_t size() const override { return all_ ? source_->size() : static_cast<int64_t>(indices_.size()); }
  int64_t label(int64_t index) const override { return source_->label(at(index)); }
  std::array<int64_t, 3> shape() const override { return shape_; }
  int64_t fill(int64_t index, bool augment, uint64_t sample_seed, float* out) const override {
    Rng rng(sample_seed);
    const int64_t i = at(index);
    source_->fill(i, augment, rng, *augmenter_, out);
    return source_->label(i);
  }

 private:
  int64_t at(int64_t index) const {
    if (index < 0 || index >= size())
      throw std::out_of_range("split: index " + std::to_string(index) + " out of range [0, " +
                              std::to_string(size()) + ")");
    return all_ ? index : indices_[index];
  }

  std::shared_ptr<const ExampleSource> source_;
  std::vector<int64_t> indices_;
  bool all_ = false;
  std::shared_ptr<const Augmenter> augmenter_;
  std::array<int64_t, 3> shape_;
};

class BasicDataset : public Dataset {
 public:
  BasicDataset(DatasetInfo info, std::shared_ptr<const Split> train, std::shared_ptr<const Split> val,
               std::shared_ptr<const Split> test)
      : info_(std::move(info)), train_(std::move(train)), val_(std::move(val)), test_(std::move(test)) {}
  const DatasetInfo& info() const override { return info_; }
  std::shared_ptr<const Split> train() const override { return train_; }
  std::shared_ptr<const Split> val() const override { return val_; }
  std::shared_ptr<const Split> test() const override { return test_; }

 private:
  DatasetInfo info_;
  std::shared_ptr<const Split> train_, val_, test_;
};

}  // namespace

std::shared_ptr<Dataset> build_dataset(DatasetInfo info, std::shared_ptr<const ExampleSource> train,
                                       std::shared_ptr<const ExampleSource> test, const CommonOptions& options,
                                       uint64_t seed, const std::string& path) {
  info.mean = options.mean;
  info.std = options.std;
  const std::array<int64_t, 3> shape{info.channels, info.height, info.width};
  auto augmenter = std::make_shared<const Augmenter>(options, info.channels, info.height, info.width);
  TrainValIndices idx = split_indices(train->size(), options, seed, path);
  std::shared_ptr<const Split> train_split, val_split, test_split;
  if (options.subset == 0 && idx.val.empty())
    train_split = std::make_shared<SourceSplit>(train, augmenter, shape);
  else
    train_split = std::make_shared<SourceSplit>(train, std::move(idx.train), augmenter, shape);
  if (!idx.val.empty()) val_split = std::make_shared<SourceSplit>(train, std::move(idx.val), augmenter, shape);
  if (test) test_split = std::make_shared<SourceSplit>(test, augmenter, shape);
  return std::make_shared<BasicDataset>(std::move(info), train_split, val_split, test_split);
}

// ---- files ----

void data_error(const std::string& dataset, const std::string& file, const std::string& what) {
  throw DataError(dataset + ": " + file + ": " + what);
}

void require_directory(const std::string& dataset, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) data_error(dataset, path, "missing directory");
  if (!std::filesystem::is_directory(path, ec)) data_error(dataset, path, "not a directory");
}

namespace {

// zlib's message without the path it prefixes.
std::string gz_message(gzFile f, const std::string& path, int* code) {
  std::string msg = gzerror(f, code);
  if (msg.rfind(path + ": ", 0) == 0) msg = msg.substr(path.size() + 2);
  return msg;
}

}  // namespace

std::vector<uint8_t> read_file(const std::string& dataset, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) data_error(dataset, path, "missing file");
  if (std::filesystem::is_directory(path, ec)) data_error(dataset, path, "is a directory, expected a file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) data_error(dataset, path, "cannot open the file");
  std::vector<uint8_t> data;
  auto size = std::filesystem::file_size(path, ec);
  if (!ec) data.reserve(size);
  constexpr std::size_t kChunk = 1 << 20;
  for (;;) {
    const std::size_t have = data.size();
    data.resize(have + kChunk);
    const int n = gzread(f, data.data() + have, static_cast<unsigned>(kChunk));
    data.resize(have + static_cast<std::size_t>(std::max(n, 0)));
    if (n <= 0) break;
  }
  // A gzip stream cut short reads as a short file with Z_BUF_ERROR set.
  int code = Z_OK;
  const std::string msg = gz_message(f, path, &code);
  const int error = errno;
  gzclose(f);
  if (code == Z_ERRNO) data_error(dataset, path, std::string("cannot read: ") + std::strerror(error));
  if (code != Z_OK) data_error(dataset, path, "cannot read: " + msg + " (truncated or corrupt gzip data)");
  return data;
}

}  // namespace sgs::data
