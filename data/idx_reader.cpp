#include "idx_reader.h"

#include <cstdio>
#include <filesystem>

namespace sgs::data {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension

uint32_t big_endian(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// The file name as present: plain, else .gz.
std::string find_idx_file(const std::string& dataset, const std::string& root, const std::string& name) {
  std::filesystem::path plain = std::filesystem::path(root) / name;
  std::error_code ec;
  if (std::filesystem::exists(plain, ec)) return plain.string();
  std::string gz = plain.string() + ".gz";
  if (std::filesystem::exists(gz, ec)) return gz;
  data_error(dataset, plain.string() + "[.gz]", "missing file");
}

// The header's dimensions, after checking the magic number and the length.
std::vector<int64_t> read_header(const std::string& dataset, const std::string& path, const std::vector<uint8_t>& data,
                                 uint32_t magic, const char* what) {
  const int ndims = static_cast<int>(magic & 0xff);
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  if (data.size() < 4) data_error(dataset, path, "truncated: " + std::to_string(data.size()) + " bytes, no IDX header");
  const uint32_t got = big_endian(data.data());
  if (got != magic)
    data_error(dataset, path, "wrong magic number " + hex(got) + ", expected " + hex(magic) + " (IDX " + what + ")");
  if (data.size() < header)
    data_error(dataset, path, "truncated: " + std::to_string(data.size()) + " bytes, shorter than the IDX header");
  std::vector<int64_t> dims;
  int64_t count = 1;
  for (int d = 0; d < ndims; ++d) {
    dims.push_back(big_endian(data.data() + 4 + 4 * d));
    count *= dims.back();
  }
  if (count == 0) data_error(dataset, path, "holds no data (a dimension is 0)");
  const auto body = static_cast<int64_t>(data.size() - header);
  if (body < count)
    data_error(dataset, path, "truncated: the header announces " + std::to_string(count) + " bytes of " + what +
                                  ", the file holds " + std::to_string(body));
  if (body > count)
    data_error(dataset, path, std::to_string(body - count) + " unexpected bytes after the " + std::to_string(count) +
                                  " bytes of " + what + " (corrupt file?)");
  return dims;
}

}  // namespace

ImageArray read_idx_split(const std::string& dataset, const std::string& root, const std::string& stem,
                          int64_t num_classes) {
  const std::string images_path = find_idx_file(dataset, root, stem + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(dataset, root, stem + "-labels-idx1-ubyte");

  std::vector<uint8_t> images = read_file(dataset, images_path);
  auto dims = read_header(dataset, images_path, images, kImagesMagic, "unsigned-byte images, 3 dimensions");
  std::vector<uint8_t> labels = read_file(dataset, labels_path);
  auto label_dims = read_header(dataset, labels_path, labels, kLabelsMagic, "unsigned-byte labels, 1 dimension");
  if (label_dims[0] != dims[0])
    data_error(dataset, labels_path, "holds " + std::to_string(label_dims[0]) + " labels but " + images_path +
                                         " holds " + std::to_string(dims[0]) + " images");

  ImageArray out;
  out.channels = 1;
  out.height = dims[1];
  out.width = dims[2];
  out.labels.resize(static_cast<std::size_t>(dims[0]));
  const uint8_t* l = labels.data() + 8;
  for (int64_t i = 0; i < dims[0]; ++i) {
    if (l[i] >= num_classes)
      data_error(dataset, labels_path, "label " + std::to_string(l[i]) + " of example " + std::to_string(i) +
                                           " is out of range [0, " + std::to_string(num_classes) + ")");
    out.labels[i] = l[i];
  }
  images.erase(images.begin(), images.begin() + 16);
  out.pixels = std::move(images);
  return out;
}

std::shared_ptr<Dataset> load_idx_dataset(const std::string& name, FolderOptions o, uint64_t seed,
                                          const Defaults& defaults) {
  constexpr int64_t kClasses = 10;
  resolve_normalisation(o, defaults, 1);
  const std::string root = o.root;
  require_directory(name, root);
  ImageArray train = read_idx_split(name, root, "train", kClasses);
  ImageArray test = read_idx_split(name, root, "t10k", kClasses);
  if (test.height != train.height || test.width != train.width)
    data_error(name, root, "train images are " + std::to_string(train.height) + "x" + std::to_string(train.width) +
                               " but t10k images are " + std::to_string(test.height) + "x" +
                               std::to_string(test.width));
  DatasetInfo info;
  info.name = name;
  info.channels = 1;
  info.height = train.height;
  info.width = train.width;
  info.num_classes = kClasses;
  return build_dataset(info, std::make_shared<ArraySource>(std::move(train)),
                       std::make_shared<ArraySource>(std::move(test)), o, seed, o.path);
}

}  // namespace sgs::data
