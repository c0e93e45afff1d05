// cifar10 and cifar100: the binary version's records and their errors.
#include <doctest/doctest.h>

#include "data_test_util.h"

#include <sgs/errors.h>

using namespace sgs_test;

namespace {

// Channel c of record `id`: a plane whose value encodes (id, c, y, x).
int px(int id, int c, int y, int x) { return (id * 29 + c * 80 + y * 3 + x) % 256; }

Bytes records(const std::vector<std::vector<uint8_t>>& labels, int first_id) {
  Bytes b;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    b.insert(b.end(), labels[r].begin(), labels[r].end());
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) b.push_back(static_cast<uint8_t>(px(first_id + static_cast<int>(r), c, y, x)));
  }
  return b;
}

// CIFAR-10: 5 batches of 3 records (ids 0..14, label id % 10), test 2 records (ids 100, 101).
void write_cifar10(const fs::path& dir) {
  for (int b = 0; b < 5; ++b) {
    std::vector<std::vector<uint8_t>> labels;
    for (int r = 0; r < 3; ++r) labels.push_back({static_cast<uint8_t>((b * 3 + r) % 10)});
    write_bytes(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"), records(labels, b * 3));
  }
  write_bytes(dir / "test_batch.bin", records({{7}, {9}}, 100));
}

float norm(int v, double mean, double std) { return static_cast<float>((v / 255.0 - mean) / std); }

}  // namespace

TEST_CASE("cifar10: records are a label byte and R, G, B planes of 32x32") {
  TempDir dir;
  write_cifar10(dir.path());
  auto d = make_dataset("cifar10", {{"root", dir.str()}});
  CHECK(d->info().num_classes == 10);
  CHECK(d->info().channels == 3);
  REQUIRE(d->train()->size() == 15);
  REQUIRE(d->test()->size() == 2);
  CHECK(d->train()->shape() == std::array<int64_t, 3>{3, 32, 32});
  const double mean[3] = {0.4914, 0.4822, 0.4465}, std[3] = {0.2470, 0.2435, 0.2616};
  for (int id = 0; id < 15; ++id) {
    int64_t label = -1;
    auto v = fill(*d->train(), id, false, 0, &label);
    CHECK(label == id % 10);
    for (int c = 0; c < 3; ++c)
      for (int y : {0, 13, 31})
        for (int x : {0, 7, 31}) CHECK(v[(c * 32 + y) * 32 + x] == doctest::Approx(norm(px(id, c, y, x), mean[c], std[c])));
  }
  int64_t label = -1;
  auto t = fill(*d->test(), 1, false, 0, &label);
  CHECK(label == 9);
  CHECK(t[(2 * 32 + 5) * 32 + 6] == doctest::Approx(norm(px(101, 2, 5, 6), mean[2], std[2])));
  const auto& schema = sgs::Registry::global().get("dataset", "cifar10").schema;
  CHECK(sgs::find_key(schema, "random_crop_padding")->default_value == 4);
  CHECK(sgs::find_key(schema, "hflip")->default_value == true);
}

TEST_CASE("cifar10: the archive's folder cifar-10-batches-bin under root is found") {
  TempDir dir;
  write_cifar10(dir / "cifar-10-batches-bin");
  auto d = make_dataset("cifar10", {{"root", dir.str()}});
  CHECK(d->train()->size() == 15);
}

TEST_CASE("cifar10: training augmentation is seeded per example and stays in range") {
  TempDir dir;
  write_cifar10(dir.path());
  auto d = make_dataset("cifar10", {{"root", dir.str()}, {"cutout", 8}});
  auto a = fill(*d->train(), 3, true, 11);
  CHECK(a == fill(*d->train(), 3, true, 11));
  bool differs = false;
  for (uint64_t s = 12; s < 20; ++s) differs = differs || fill(*d->train(), 3, true, s) != a;
  CHECK(differs);
  const float lo = norm(0, 0.4914, 0.2470) - 1e-5f, hi = norm(255, 0.4822, 0.2435) + 1e-5f;
  for (float v : a) {
    CHECK(v >= lo);
    CHECK(v <= hi);
  }
  CHECK(std::count(a.begin(), a.end(), 0.0f) >= 3 * 4 * 4);  // cutout covers at least a clipped corner
}

TEST_CASE("cifar100: the fine label of coarse+fine records is used") {
  TempDir dir;
  write_bytes(dir / "train.bin", records({{3, 42}, {19, 99}, {0, 0}}, 0));
  write_bytes(dir / "test.bin", records({{5, 57}}, 50));
  auto d = make_dataset("cifar100", {{"root", dir.str()}});
  CHECK(d->info().num_classes == 100);
  REQUIRE(d->train()->size() == 3);
  CHECK(d->train()->label(0) == 42);
  CHECK(d->train()->label(1) == 99);
  CHECK(d->test()->label(0) == 57);
  auto v = fill(*d->train(), 1);
  CHECK(v[0] == doctest::Approx(norm(px(1, 0, 0, 0), 0.5071, 0.2673)));
  CHECK(v[32 * 32 + 33] == doctest::Approx(norm(px(1, 1, 1, 1), 0.4865, 0.2564)));
}

TEST_CASE("cifar: missing, truncated and empty files and labels out of range are named") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(make_dataset("cifar10", {{"root", (dir / "none").string()}}),
                       ("cifar10: " + (dir / "none").string() + ": missing directory").c_str(), sgs::DataError);
  write_cifar10(dir.path());
  fs::remove(dir / "data_batch_3.bin");
  CHECK_THROWS_WITH_AS(make_dataset("cifar10", {{"root", dir.str()}}),
                       ("cifar10: " + (dir / "data_batch_3.bin").string() + ": missing file").c_str(), sgs::DataError);
  auto batch = records({{1}, {2}}, 0);
  batch.resize(batch.size() - 100);
  write_bytes(dir / "data_batch_3.bin", batch);
  CHECK_THROWS_WITH_AS(make_dataset("cifar10", {{"root", dir.str()}}),
                       ("cifar10: " + (dir / "data_batch_3.bin").string() +
                        ": truncated or corrupt: 6046 bytes is not a whole number of 3073-byte records")
                           .c_str(),
                       sgs::DataError);
  write_bytes(dir / "data_batch_3.bin", {});
  CHECK_THROWS_WITH_AS(make_dataset("cifar10", {{"root", dir.str()}}),
                       ("cifar10: " + (dir / "data_batch_3.bin").string() + ": empty file").c_str(), sgs::DataError);
  write_bytes(dir / "data_batch_3.bin", records({{1}, {10}}, 0));
  CHECK_THROWS_WITH_AS(make_dataset("cifar10", {{"root", dir.str()}}),
                       ("cifar10: " + (dir / "data_batch_3.bin").string() + ": label 10 of record 1 is out of range [0, 10)")
                           .c_str(),
                       sgs::DataError);

  TempDir c100;
  write_bytes(c100 / "train.bin", records({{20, 1}}, 0));
  write_bytes(c100 / "test.bin", records({{0, 1}}, 0));
  CHECK_THROWS_WITH_AS(make_dataset("cifar100", {{"root", c100.str()}}),
                       ("cifar100: " + (c100 / "train.bin").string() +
                        ": label 20 of record 0 is out of range [0, 20) (coarse label)")
                           .c_str(),
                       sgs::DataError);
  write_bytes(c100 / "train.bin", records({{0, 100}}, 0));
  CHECK_THROWS_WITH_AS(make_dataset("cifar100", {{"root", c100.str()}}),
                       doctest::Contains("label 100 of record 0 is out of range [0, 100) (fine label)"), sgs::DataError);
}
