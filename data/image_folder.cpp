// image_folder: ImageNet-style folders, root/train/<class>/<image> and
// (optional, the test split) root/val/<class>/<image>; classes are the sorted
// sub-folder names of train/. Images are listed at construction and decoded
// in fill() with OpenCV. Training (the paper's ImageNet recipe, as in
// torchvision): RandomResizedCrop(size, scale=(min_scale, 1), ratio=(3/4, 4/3)),
// horizontal flip, ColorJitter(brightness, contrast, saturation) in a random
// order; evaluation: resize the shorter side to size / 0.875, centre crop size.
// Normalisation defaults to ImageNet's mean (0.485, 0.456, 0.406) and std
// (0.229, 0.224, 0.225).
#include "common.h"

#include <sgs/version.h>

#if SGS_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

namespace {

namespace fs = std::filesystem;
using sgs::data::data_error;
using sgs::data::Rng;

const char* kName = "image_folder";

const sgs::data::Defaults& defaults() {
  static const sgs::data::Defaults d{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, 0, true};
  return d;
}

// torchvision's IMG_EXTENSIONS, as far as OpenCV decodes them.
bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* e : {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
    if (ext == e) return true;
  return false;
}

// Before training: every image exists, is not empty, starts with the
// signature of a format OpenCV decodes and, for JPEG and PNG (nearly every
// dataset), ends with its end marker; so that an empty, truncated or
// mislabelled file stops the run before anything is written rather than in
// epoch 37. (A file damaged inside is still found when it is decoded.)
void check_image_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::error_code ec;
    if (errno == ENOENT && fs::is_symlink(path, ec)) data_error(kName, path, "a dangling symbolic link");
    data_error(kName, path, std::string("cannot open the image: ") + std::strerror(errno));
  }
  struct stat st {};
  unsigned char head[16] = {}, tail[1024] = {};
  ssize_t n_head = 0, n_tail = 0;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    n_head = ::pread(fd, head, sizeof head, 0);
    const off_t from = std::max<off_t>(0, st.st_size - static_cast<off_t>(sizeof tail));
    n_tail = ::pread(fd, tail, static_cast<size_t>(st.st_size - from), from);
  }
  ::close(fd);
  if (st.st_size == 0) data_error(kName, path, "an empty file (0 bytes), not an image");
  if (n_head < 4 || n_tail < 2) data_error(kName, path, "cannot read the image");
  auto starts = [&](const char* sig, size_t n) {
    return static_cast<size_t>(n_head) >= n && std::memcmp(head, sig, n) == 0;
  };
  auto tail_has = [&](const char* marker, size_t n) {
    for (ssize_t i = n_tail - static_cast<ssize_t>(n); i >= 0; --i)
      if (std::memcmp(tail + i, marker, n) == 0) return true;
    return false;
  };
  if (starts("\xFF\xD8\xFF", 3)) {
    if (!tail_has("\xFF\xD9", 2)) data_error(kName, path, "a truncated JPEG (no end-of-image marker)");
  } else if (starts("\x89PNG\r\n\x1A\n", 8)) {
    if (!tail_has("IEND", 4)) data_error(kName, path, "a truncated PNG (no IEND chunk)");
  } else if (!(starts("BM", 2) || (head[0] == 'P' && head[1] >= '1' && head[1] <= '6') || starts("II*\0", 4) ||
               starts("MM\0*", 4) || (starts("RIFF", 4) && n_head >= 12 && std::memcmp(head + 8, "WEBP", 4) == 0))) {
    data_error(kName, path, "not an image (its first bytes match no JPEG, PNG, BMP, PNM, TIFF or WebP signature)");
  }
}

bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

// The non-hidden entries of `dir`, sorted by name (their file types come
// from the directory listing: no stat per image on ImageNet-sized folders).
std::vector<fs::directory_entry> sorted_entries(const fs::path& dir) {
  std::vector<fs::directory_entry> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) data_error(kName, dir.string(), "cannot list the directory: " + ec.message());
  for (const auto& e : it)
    if (!hidden(e.path())) out.push_back(e);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.path() < b.path(); });
  return out;
}

std::vector<std::string> class_names(const fs::path& train) {
  std::vector<std::string> classes;
  for (const auto& e : sorted_entries(train))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  if (classes.empty()) data_error(kName, train.string(), "no class folders (expected train/<class>/<image>)");
  return classes;
}

struct Jitter {
  double brightness, contrast, saturation;
  bool on() const { return brightness > 0 || contrast > 0 || saturation > 0; }
};

class FolderSource : public sgs::data::ExampleSource {
 public:
  // Lists dir/<class>/<image> for the given classes; a class folder absent
  // from dir is allowed only when `all_classes` is false (val/).
  FolderSource(const fs::path& dir, const std::vector<std::string>& classes, bool all_classes, int64_t size,
               double min_scale, Jitter jitter, bool check_files)
      : size_(size), min_scale_(min_scale), jitter_(jitter) {
    for (const auto& folder : sorted_entries(dir)) {
      if (!folder.is_directory()) continue;
      const fs::path& p = folder.path();
      auto it = std::find(classes.begin(), classes.end(), p.filename().string());
      if (it == classes.end())
        data_error(kName, p.string(), "class folder not found in train/ (classes are train/'s sub-folders)");
      const auto label = static_cast<int32_t>(it - classes.begin());
      const std::size_t before = files_.size();
      for (const auto& f : sorted_entries(p))
        if (!f.is_directory() && is_image(f.path())) {
          files_.push_back(f.path().string());
          labels_.push_back(label);
        }
      if (files_.size() == before) data_error(kName, p.string(), "empty class folder (no image files)");
    }
    if (all_classes)
      for (const auto& c : classes)
        if (!fs::is_directory(dir / c)) data_error(kName, (dir / c).string(), "missing class folder");
    if (files_.empty()) data_error(kName, dir.string(), "no class folders with images");
    if (check_files)
      for (const auto& f : files_) check_image_file(f);
  }

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t label(int64_t index) const override { return labels_[index]; }

  void fill(int64_t index, bool augment, Rng& rng, const sgs::data::Augmenter& augmenter, float* out) const override {
    const std::string& path = files_[index];
    cv::Mat image;
    try {
      image = cv::imread(path, cv::IMREAD_COLOR);
    } catch (const cv::Exception& e) {
      data_error(kName, path, std::string("cannot decode the image: ") + e.what());
    }
    if (image.empty() || image.rows < 1 || image.cols < 1)
      data_error(kName, path, "cannot decode the image (unreadable, corrupt or not an image)");
    cv::Mat crop = augment ? random_resized_crop(image, rng) : resize_centre_crop(image);
    cv::cvtColor(crop, crop, cv::COLOR_BGR2RGB);
    if (augment && jitter_.on()) colour_jitter(crop, rng);
    augmenter.apply(crop.ptr<uint8_t>(), {1, static_cast<std::ptrdiff_t>(crop.step[0]), 3}, augment, rng, out);
  }

 private:
  cv::Mat resized(const cv::Mat& src, int width, int height) const {
    cv::Mat out;
    const bool shrink = width < src.cols && height < src.rows;
    cv::resize(src, out, cv::Size(width, height), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
  }

  // torchvision's RandomResizedCrop.get_params, then a resize to size x size.
  cv::Mat random_resized_crop(const cv::Mat& image, Rng& rng) const {
    const int height = image.rows, width = image.cols;
    const double area = static_cast<double>(height) * width;
    const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
    cv::Rect box;
    bool found = false;
    for (int attempt = 0; attempt < 10 && !found; ++attempt) {
      const double target = area * rng.uniform(min_scale_, 1.0);
      const double ratio = std::exp(rng.uniform(log_lo, log_hi));
      const int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
      const int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
      if (w > 0 && w <= width && h > 0 && h <= height) {
        const int top = static_cast<int>(rng.below(height - h + 1));
        const int left = static_cast<int>(rng.below(width - w + 1));
        box = cv::Rect(left, top, w, h);
        found = true;
      }
    }
    if (!found) {  // the centre crop of the closest allowed aspect ratio
      const double in_ratio = static_cast<double>(width) / height;
      int w = width, h = height;
      if (in_ratio < 3.0 / 4.0) h = std::max(1, static_cast<int>(std::lround(w / (3.0 / 4.0))));
      else if (in_ratio > 4.0 / 3.0) w = std::max(1, static_cast<int>(std::lround(h * (4.0 / 3.0))));
      h = std::min(h, height);
      w = std::min(w, width);
      box = cv::Rect((width - w) / 2, (height - h) / 2, w, h);
    }
    return resized(image(box), static_cast<int>(size_), static_cast<int>(size_));
  }

  // Shorter side to round(size / 0.875), then the centre size x size.
  cv::Mat resize_centre_crop(const cv::Mat& image) const {
    const auto shorter = static_cast<int>(std::lround(static_cast<double>(size_) / 0.875));
    int w, h;
    if (image.cols <= image.rows) {
      w = shorter;
      h = static_cast<int>(static_cast<int64_t>(shorter) * image.rows / image.cols);
    } else {
      h = shorter;
      w = static_cast<int>(static_cast<int64_t>(shorter) * image.cols / image.rows);
    }
    cv::Mat scaled = resized(image, w, h);
    const auto s = static_cast<int>(size_);
    const int top = static_cast<int>(std::lround((h - s) / 2.0)), left = static_cast<int>(std::lround((w - s) / 2.0));
    return scaled(cv::Rect(left, top, s, s));
  }

  // ColorJitter on an RGB uint8 image as PIL's ImageEnhance does it: each
  // factor f ~ U(max(0, 1 - j), 1 + j) blends the image with a degenerate one,
  // out = degenerate + f (image - degenerate): black (brightness), the mean
  // grey level (contrast), the pixel's grey level (saturation); grey =
  // 0.299 R + 0.587 G + 0.114 B. The three are applied in a random order.
  void colour_jitter(cv::Mat& rgb, Rng& rng) const {
    int order[3] = {0, 1, 2};
    for (int i = 2; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    const double amount[3] = {jitter_.brightness, jitter_.contrast, jitter_.saturation};
    double factor[3];
    for (int i = 0; i < 3; ++i)
      factor[i] = amount[i] > 0 ? rng.uniform(std::max(0.0, 1.0 - amount[i]), 1.0 + amount[i]) : 1.0;
    cv::Mat f;
    rgb.convertTo(f, CV_32FC3);
    const int n = f.rows * f.cols;
    auto* p = f.ptr<float>();
    auto grey = [](const float* px) { return 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2]; };
    auto clamp255 = [](float v) { return std::clamp(v, 0.0f, 255.0f); };
    for (int op : order) {
      const auto k = static_cast<float>(factor[op]);
      if (amount[op] <= 0) continue;
      if (op == 0) {
        for (int i = 0; i < 3 * n; ++i) p[i] = clamp255(p[i] * k);
      } else if (op == 1) {
        double sum = 0;
        for (int i = 0; i < n; ++i) sum += grey(p + 3 * i);
        const auto mean = static_cast<float>(std::round(sum / n));
        for (int i = 0; i < 3 * n; ++i) p[i] = clamp255(mean + k * (p[i] - mean));
      } else {
        for (int i = 0; i < n; ++i) {
          float* px = p + 3 * i;
          const float g = grey(px);
          for (int c = 0; c < 3; ++c) px[c] = clamp255(g + k * (px[c] - g));
        }
      }
    }
    f.convertTo(rgb, CV_8UC3);  // rounds and saturates
  }

  int64_t size_;
  double min_scale_;
  Jitter jitter_;
  std::vector<std::string> files_;
  std::vector<int32_t> labels_;
};

struct ImageFolderOptions : sgs::data::FolderOptions {
  int64_t size = 224;
  double min_scale = 0.08, brightness = 0.4, contrast = 0.4, saturation = 0.4;
  bool check_files = true;
  ImageFolderOptions() : FolderOptions(defaults()) {}
  static void declare(sgs::Declare<ImageFolderOptions>& d) {
    using O = ImageFolderOptions;
    d.required(&O::root, "root", "folder holding train/<class>/ and optionally val/<class>/").specific_to_run();
    d.key(&O::size, "size", "side of the square crop the model sees").ge(8).le(4096);
    d.key(&O::min_scale, "min_scale", "training: smallest area fraction of a random-resized crop").gt(0).le(1);
    d.key(&O::brightness, "brightness", "training: colour jitter of brightness; 0 = off").ge(0);
    d.key(&O::contrast, "contrast", "training: colour jitter of contrast; 0 = off").ge(0);
    d.key(&O::saturation, "saturation", "training: colour jitter of saturation; 0 = off").ge(0);
    d.key(&O::check_files, "check_files",
          "before training, check that every image file is non-empty and starts (and, for JPEG/PNG, ends) as its "
          "format does; one read of each file's ends");
    declare_common(d, defaults());
  }
};

std::shared_ptr<sgs::Dataset> make_image_folder(ImageFolderOptions o, uint64_t seed) {
  sgs::data::resolve_normalisation(o, defaults(), 3);
  const int64_t size = o.size;
  const Jitter jitter{o.brightness, o.contrast, o.saturation};
  const fs::path root = o.root;
  const bool check = o.check_files;
  // A file OpenCV cannot decode is reported by our error, not by its log.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  sgs::data::require_directory(kName, root.string());
  sgs::data::require_directory(kName, (root / "train").string());
  const std::vector<std::string> classes = class_names(root / "train");
  auto train = std::make_shared<FolderSource>(root / "train", classes, true, size, o.min_scale, jitter, check);
  std::shared_ptr<const sgs::data::ExampleSource> test;
  std::error_code ec;
  if (fs::exists(root / "val", ec)) {
    sgs::data::require_directory(kName, (root / "val").string());
    test = std::make_shared<FolderSource>(root / "val", classes, false, size, o.min_scale, jitter, check);
  }
  sgs::DatasetInfo info;
  info.name = kName;
  info.channels = 3;
  info.height = size;
  info.width = size;
  info.num_classes = static_cast<int64_t>(classes.size());
  return sgs::data::build_dataset(info, train, test, o, seed, o.path);
}

}  // namespace

SGS_REGISTER(
    sgs::DatasetKind, image_folder,
    "ImageNet-style folders root/{train,val}/<class>/<image>, decoded with OpenCV, 3 x size x size",
    ImageFolderOptions, [](const ImageFolderOptions& o, uint64_t seed) { return make_image_folder(o, seed); });

#else

// Configured without OpenCV (SGS_WITH_OPENCV): a config naming image_folder
// is refused with this reason.
SGS_REGISTER_ABSENT(sgs::DatasetKind, image_folder, "it needs OpenCV, which this build was configured without")

#endif  // SGS_WITH_OPENCV
