#include "support/plugins.h"

#include "data/data_test_util.h"

#include <sgs/errors.h>
#include <sgs/version.h>

#if SGS_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif
#include <torch/torch.h>

#include <functional>
#include <map>

namespace sgs::test {

namespace {

namespace fs = std::filesystem;
using sgs_test::Bytes;

// Deterministic bytes that differ by image, channel and position.
uint8_t pixel(int image, int c, int y, int x) { return static_cast<uint8_t>((image * 53 + c * 97 + y * 13 + x * 7) % 256); }

// Binary CIFAR records: the label bytes, then R, G, B planes of 32x32.
Bytes cifar_records(int first, int count, int label_bytes, int classes) {
  Bytes b;
  for (int i = first; i < first + count; ++i) {
    for (int l = 0; l < label_bytes; ++l) b.push_back(static_cast<uint8_t>((i + l) % classes));
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) b.push_back(pixel(i, c, y, x));
  }
  return b;
}

Json cifar10(const fs::path& dir) {
  for (int b = 0; b < 5; ++b)
    sgs_test::write_bytes(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"), cifar_records(2 * b, 2, 1, 10));
  sgs_test::write_bytes(dir / "test_batch.bin", cifar_records(100, 3, 1, 10));
  return {{"root", dir.string()}};
}

Json cifar100(const fs::path& dir) {
  sgs_test::write_bytes(dir / "train.bin", cifar_records(0, 10, 2, 100));
  sgs_test::write_bytes(dir / "test.bin", cifar_records(100, 3, 2, 100));
  return {{"root", dir.string()}};
}

// MNIST-style IDX files, gzip, 12 train and 4 test images of 7x6.
Json idx(const fs::path& dir) {
  auto px = [](int base) { return [base](uint32_t i, uint32_t y, uint32_t x) { return pixel(base + static_cast<int>(i), 0, y, x); }; };
  auto labels = [](uint32_t n) {
    std::vector<uint8_t> l;
    for (uint32_t i = 0; i < n; ++i) l.push_back(static_cast<uint8_t>(i % 10));
    return l;
  };
  sgs_test::write_gzip(dir / "train-images-idx3-ubyte.gz", sgs_test::idx_images(12, 7, 6, px(0)));
  sgs_test::write_gzip(dir / "train-labels-idx1-ubyte.gz", sgs_test::idx_labels(labels(12)));
  sgs_test::write_gzip(dir / "t10k-images-idx3-ubyte.gz", sgs_test::idx_images(4, 7, 6, px(100)));
  sgs_test::write_gzip(dir / "t10k-labels-idx1-ubyte.gz", sgs_test::idx_labels(labels(4)));
  return {{"root", dir.string()}};
}

#if SGS_WITH_OPENCV
// train/{a,b}/ and val/{a,b}/ with small PNGs of several sizes.
Json image_folder(const fs::path& dir) {
  int n = 0;
  auto image = [&](const fs::path& p, int rows, int cols) {
    fs::create_directories(p.parent_path());
    cv::Mat m(rows, cols, CV_8UC3);
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x)
        m.at<cv::Vec3b>(y, x) = cv::Vec3b(pixel(n, 0, y, x), pixel(n, 1, y, x), pixel(n, 2, y, x));
    ++n;
    if (!cv::imwrite(p.string(), m)) throw std::runtime_error("cannot write " + p.string());
  };
  image(dir / "train/a/0.png", 12, 10);
  image(dir / "train/a/1.png", 9, 14);
  image(dir / "train/b/0.png", 16, 16);
  image(dir / "train/b/1.png", 10, 12);
  image(dir / "val/a/0.png", 11, 13);
  image(dir / "val/b/0.png", 13, 11);
  return {{"root", dir.string()}, {"size", 8}};
}
#endif

struct Entry {
  Json keys;                                // fixed keys
  std::function<Json(const fs::path&)> files;  // datasets: writes their files, returns keys
};

// kind -> name -> what the tests give that plugin besides its defaults.
const std::map<std::string, std::map<std::string, Entry>>& table() {
  static const std::map<std::string, std::map<std::string, Entry>> t = {
      {"strategy",
       {
           {"fixed", {{{"matrix", {{1, 2, 1}, {2, 4, 2}, {1, 2, 1}}}}, nullptr}},
           {"alpha_beta", {{{"alpha", 1.7}, {"beta", 5.0}}, nullptr}},
       }},
      {"dataset",
       {
           {"synthetic", {{{"size", 8}, {"channels", 1}, {"classes", 4}, {"train_size", 64}, {"test_size", 16}}, nullptr}},
           {"cifar10", {Json::object(), cifar10}},
           {"cifar100", {Json::object(), cifar100}},
           {"mnist", {Json::object(), idx}},
           // Not the installed set (/usr/share/datasets): the same files for every machine.
           {"fashion_mnist", {Json::object(), idx}},
#if SGS_WITH_OPENCV
           {"image_folder", {Json::object(), image_folder}},
#endif
       }},
  };
  return t;
}

}  // namespace

bool has_test_keys(const std::string& kind, const std::string& name) {
  auto k = table().find(kind);
  return k != table().end() && k->second.count(name) != 0;
}

std::vector<std::pair<std::string, std::string>> test_key_entries() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [kind, names] : table())
    for (const auto& [name, entry] : names) out.emplace_back(kind, name);
  return out;
}

Json test_slot(const std::string& kind, const std::string& name, const Json& extra, const fs::path& scratch) {
  Json slot = Json::object();
  if (has_test_keys(kind, name)) {
    const Entry& e = table().at(kind).at(name);
    slot = e.keys;
    if (e.files) {
      if (scratch.empty()) throw std::logic_error("test_slot: " + kind + " '" + name + "' needs a scratch folder");
      slot.update(e.files(scratch / (kind + "_" + name)));
    }
  }
  slot.update(extra);
  slot["name"] = name;
  return slot;
}

Options test_options(const std::string& kind, const std::string& name, const Json& extra, const fs::path& scratch) {
  const auto& info = Registry::global().get(kind, name);
  return Options(resolve_object(test_slot(kind, name, extra, scratch), kind, info.schema, {"name"}), kind);
}

std::unique_ptr<Strategy> make_strategy(const std::string& name, const Json& extra) {
  return Registry::global().factory<StrategyKind>(name)(test_options("strategy", name, extra));
}

std::unique_ptr<Strategy> strategy_from(const std::string& name, Json keys) {
  const auto& info = Registry::global().get("strategy", name);
  keys["name"] = name;
  Options o(resolve_object(keys, "strategy", info.schema, {"name"}), "strategy");
  return Registry::global().factory<StrategyKind>(name)(o);
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  return (a64 - b64).abs().max().item<double>() / std::max(1e-30, b64.abs().max().item<double>());
}

std::shared_ptr<Model> make_model(const std::string& name, const ModelSpec& spec, ConvFactory& factory,
                                  const Json& extra) {
  torch::manual_seed(0);
  return Registry::global().factory<ModelKind>(name)(test_options("model", name, extra), spec, factory);
}

ConvSpec reference_spec(const Json& c) {
  ConvSpec spec;
  spec.in_channels = c.at("in");
  spec.out_channels = c.at("out");
  const int64_t k = c.at("k"), stride = c.at("stride"), padding = c.at("padding");
  spec.kernel = {k, k};
  spec.stride = {stride, stride};
  spec.padding = {padding, padding};
  return spec;
}

std::vector<std::string> structural_strategies() {
  std::vector<std::string> out;
  for (const auto& name : Registry::global().names("strategy"))
    if (make_strategy(name)->conv_factory() != nullptr) out.push_back(name);
  return out;
}

}  // namespace sgs::test
