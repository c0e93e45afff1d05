#include "cifar_reader.h"

#include <filesystem>

namespace sgs::data {

namespace {

constexpr int64_t kSide = 32;
constexpr int64_t kPixels = 3 * kSide * kSide;

}  // namespace

ImageArray read_cifar_files(const std::string& dataset, const std::vector<std::string>& files,
                            const CifarFormat& format) {
  const auto label_bytes = static_cast<int64_t>(format.label_classes.size());
  const int64_t record = label_bytes + kPixels;
  ImageArray out;
  out.channels = 3;
  out.height = kSide;
  out.width = kSide;
  for (const auto& path : files) {
    std::vector<uint8_t> data = read_file(dataset, path);
    const auto size = static_cast<int64_t>(data.size());
    if (size == 0) data_error(dataset, path, "empty file");
    if (size % record != 0)
      data_error(dataset, path, "truncated or corrupt: " + std::to_string(size) + " bytes is not a whole number of " +
                                    std::to_string(record) + "-byte records");
    const int64_t n = size / record;
    const std::size_t first = out.pixels.size();
    out.pixels.resize(first + static_cast<std::size_t>(n * kPixels));
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* r = data.data() + i * record;
      for (int64_t b = 0; b < label_bytes; ++b)
        if (r[b] >= format.label_classes[b])
          data_error(dataset, path, "label " + std::to_string(r[b]) + " of record " + std::to_string(i) +
                                        " is out of range [0, " + std::to_string(format.label_classes[b]) + ")" +
                                        (label_bytes > 1 ? (b == 0 ? " (coarse label)" : " (fine label)") : ""));
      out.labels.push_back(r[format.label_used]);
      std::copy(r + label_bytes, r + record, out.pixels.begin() + static_cast<std::ptrdiff_t>(first + i * kPixels));
    }
  }
  return out;
}

std::shared_ptr<Dataset> load_cifar_dataset(const std::string& name, FolderOptions o, uint64_t seed,
                                            const Defaults& defaults, const CifarFormat& format) {
  resolve_normalisation(o, defaults, 3);
  namespace fs = std::filesystem;
  fs::path root = o.root;
  require_directory(name, root.string());
  std::error_code ec;
  if (!fs::exists(root / format.train_files[0], ec) && fs::exists(root / format.folder / format.train_files[0], ec))
    root /= format.folder;
  auto paths = [&](const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& n : names) out.push_back((root / n).string());
    return out;
  };
  ImageArray train = read_cifar_files(name, paths(format.train_files), format);
  ImageArray test = read_cifar_files(name, paths(format.test_files), format);
  DatasetInfo info;
  info.name = name;
  info.channels = 3;
  info.height = kSide;
  info.width = kSide;
  info.num_classes = format.label_classes[format.label_used];
  return build_dataset(info, std::make_shared<ArraySource>(std::move(train)),
                       std::make_shared<ArraySource>(std::move(test)), o, seed, o.path);
}

}  // namespace sgs::data
