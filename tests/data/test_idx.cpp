// mnist and fashion_mnist: the IDX reader, plain and gzip, and its errors.
#include <doctest/doctest.h>

#include "data_test_util.h"

#include <sgs/errors.h>

#include <cmath>

using namespace sgs_test;

namespace {

int px(uint32_t i, uint32_t y, uint32_t x) { return static_cast<int>((i * 37 + y * 11 + x * 3) % 256); }

std::vector<uint8_t> labels_of(uint32_t n) {
  std::vector<uint8_t> l;
  for (uint32_t i = 0; i < n; ++i) l.push_back(static_cast<uint8_t>((i * 7) % 10));
  return l;
}

// A tiny MNIST: 20 train and 6 test images of 5 rows x 4 columns.
void write_idx(const TempDir& dir, bool gzip) {
  auto write = gzip ? write_gzip : write_bytes;
  const std::string ext = gzip ? ".gz" : "";
  write(dir / ("train-images-idx3-ubyte" + ext), idx_images(20, 5, 4, px));
  write(dir / ("train-labels-idx1-ubyte" + ext), idx_labels(labels_of(20)));
  write(dir / ("t10k-images-idx3-ubyte" + ext), idx_images(6, 5, 4, [](uint32_t i, uint32_t y, uint32_t x) {
          return px(i + 100, y, x);
        }));
  write(dir / ("t10k-labels-idx1-ubyte" + ext), idx_labels(labels_of(6)));
}

void check_tiny_mnist(const sgs::Dataset& d) {
  CHECK(d.info().name == "mnist");
  CHECK(d.info().channels == 1);
  CHECK(d.info().height == 5);
  CHECK(d.info().width == 4);
  CHECK(d.info().num_classes == 10);
  CHECK(d.info().mean == std::vector<double>{0.1307});
  CHECK(d.info().std == std::vector<double>{0.3081});
  REQUIRE(d.train()->size() == 20);
  REQUIRE(d.test()->size() == 6);
  CHECK(d.val() == nullptr);
  CHECK(d.train()->shape() == std::array<int64_t, 3>{1, 5, 4});
  for (int64_t i = 0; i < 20; ++i) {
    int64_t label = -1;
    auto v = fill(*d.train(), i, false, 0, &label);
    CHECK(label == (i * 7) % 10);
    CHECK(d.train()->label(i) == label);
    for (uint32_t y = 0; y < 5; ++y)
      for (uint32_t x = 0; x < 4; ++x)
        CHECK(v[y * 4 + x] == doctest::Approx((px(static_cast<uint32_t>(i), y, x) / 255.0 - 0.1307) / 0.3081));
  }
  auto t = fill(*d.test(), 5);
  CHECK(t[0] == doctest::Approx((px(105, 0, 0) / 255.0 - 0.1307) / 0.3081));
}

}  // namespace

TEST_CASE("idx: mnist reads plain and gzip IDX files alike") {
  TempDir plain, gz;
  write_idx(plain, false);
  write_idx(gz, true);
  auto a = make_dataset("mnist", {{"root", plain.str()}});
  auto b = make_dataset("mnist", {{"root", gz.str()}});
  check_tiny_mnist(*a);
  check_tiny_mnist(*b);
  CHECK(fill(*a->train(), 13) == fill(*b->train(), 13));
}

TEST_CASE("idx: fashion_mnist shares the reader, with its own name, default root and normalisation") {
  TempDir dir;
  write_idx(dir, true);
  auto d = make_dataset("fashion_mnist", {{"root", dir.str()}, {"val_fraction", 0.25}}, 3);
  CHECK(d->info().name == "fashion_mnist");
  CHECK(d->info().mean == std::vector<double>{0.2860});
  CHECK(d->train()->size() == 15);
  REQUIRE(d->val() != nullptr);
  CHECK(d->val()->size() == 5);
  const auto& schema = sgs::Registry::global().get("dataset", "fashion_mnist").schema;
  CHECK(sgs::find_key(schema, "root")->default_value == "/usr/share/datasets/fashion-mnist");
  CHECK(sgs::find_key(schema, "random_crop_padding")->default_value == 0);
  CHECK(sgs::find_key(schema, "hflip")->default_value == false);
  CHECK_THROWS_WITH_AS(make_dataset("mnist", sgs::Json::object()), doctest::Contains("dataset.root: missing required key"),
                       sgs::ConfigError);
}

TEST_CASE("idx: missing directory and missing file are named") {
  TempDir dir;
  const std::string nowhere = (dir / "nowhere").string();
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", nowhere}}), ("mnist: " + nowhere + ": missing directory").c_str(),
                       sgs::DataError);
  write_idx(dir, true);
  sgs_test::fs::remove(dir / "t10k-labels-idx1-ubyte.gz");
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", dir.str()}}),
                       ("mnist: " + (dir / "t10k-labels-idx1-ubyte").string() + "[.gz]: missing file").c_str(),
                       sgs::DataError);
}

TEST_CASE("idx: a wrong magic number is named with the file") {
  TempDir dir;
  write_idx(dir, false);
  // Labels where images belong.
  write_bytes(dir / "train-images-idx3-ubyte", idx_labels(labels_of(20)));
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", dir.str()}}),
                       ("mnist: " + (dir / "train-images-idx3-ubyte").string() +
                        ": wrong magic number 0x00000801, expected 0x00000803 (IDX unsigned-byte images, 3 dimensions)")
                           .c_str(),
                       sgs::DataError);
}

TEST_CASE("idx: truncated plain and gzip files are named") {
  TempDir dir;
  write_idx(dir, false);
  auto images = idx_images(20, 5, 4, px);
  images.resize(images.size() - 7);
  write_bytes(dir / "train-images-idx3-ubyte", images);
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", dir.str()}}),
                       ("mnist: " + (dir / "train-images-idx3-ubyte").string() +
                        ": truncated: the header announces 400 bytes of unsigned-byte images, 3 dimensions, the file "
                        "holds 393")
                           .c_str(),
                       sgs::DataError);
  write_bytes(dir / "train-images-idx3-ubyte", {0, 0, 8, 3, 0, 0});
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", dir.str()}}), doctest::Contains("shorter than the IDX header"),
                       sgs::DataError);

  TempDir gz;
  write_idx(gz, true);
  const auto path = gz / "t10k-images-idx3-ubyte.gz";
  auto bytes = read_bytes(path);
  bytes.resize(bytes.size() / 2);  // a gzip stream cut in the middle
  write_bytes(path, bytes);
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", gz.str()}}),
                       ("mnist: " + path.string() + ": cannot read: unexpected end of file (truncated or corrupt gzip data)").c_str(), sgs::DataError);
}

TEST_CASE("idx: a label out of range, a count mismatch and trailing bytes are named") {
  TempDir dir;
  write_idx(dir, false);
  auto labels = labels_of(20);
  labels[4] = 10;
  write_bytes(dir / "train-labels-idx1-ubyte", idx_labels(labels));
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", dir.str()}}),
                       ("mnist: " + (dir / "train-labels-idx1-ubyte").string() +
                        ": label 10 of example 4 is out of range [0, 10)")
                           .c_str(),
                       sgs::DataError);
  write_bytes(dir / "train-labels-idx1-ubyte", idx_labels(labels_of(19)));
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", dir.str()}}),
                       ("mnist: " + (dir / "train-labels-idx1-ubyte").string() + ": holds 19 labels but " +
                        (dir / "train-images-idx3-ubyte").string() + " holds 20 images")
                           .c_str(),
                       sgs::DataError);
  auto extra = idx_labels(labels_of(20));
  extra.push_back(1);
  write_bytes(dir / "train-labels-idx1-ubyte", extra);
  CHECK_THROWS_WITH_AS(make_dataset("mnist", {{"root", dir.str()}}), doctest::Contains("1 unexpected bytes after"),
                       sgs::DataError);
}
