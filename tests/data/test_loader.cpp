// The loader: seeded order and augmentation, independence from the worker
// count, sharding over ranks, epochs, and errors from workers.
#include <doctest/doctest.h>

#include "data_test_util.h"

#include <sgs/errors.h>
#include <sgs/loader.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

using namespace sgs_test;

namespace {

// Example i is [i, seed bits, augment]; index `bad` throws DataError.
class FakeSplit : public sgs::Split {
 public:
  explicit FakeSplit(int64_t n, int64_t bad = -1, int slow_us = 0) : n_(n), bad_(bad), slow_us_(slow_us) {}
  int64_t size() const override { return n_; }
  int64_t label(int64_t index) const override { return index % 10; }
  std::array<int64_t, 3> shape() const override { return {1, 1, 3}; }
  int64_t fill(int64_t index, bool augment, uint64_t sample_seed, float* out) const override {
    if (index == bad_) throw sgs::DataError("fake: example " + std::to_string(index) + ".bin: cannot decode");
    if (slow_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(slow_us_));
    out[0] = static_cast<float>(index);
    out[1] = static_cast<float>(sample_seed % 1000003);
    out[2] = augment ? 1.0f : 0.0f;
    return label(index);
  }

 private:
  int64_t n_, bad_;
  int slow_us_;
};

struct Epoch {
  std::vector<int64_t> indices, labels, batch_sizes;
  std::vector<float> values;
};

Epoch run_epoch(sgs::Loader& loader, int64_t epoch) {
  Epoch e;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) {
    REQUIRE(b->images.dim() == 4);
    REQUIRE(bool(b->images.scalar_type() == torch::kFloat32));
    REQUIRE(bool(b->labels.scalar_type() == torch::kInt64));
    const int64_t n = b->images.size(0);
    REQUIRE(b->labels.size(0) == n);
    e.batch_sizes.push_back(n);
    auto img = b->images.contiguous();
    for (int64_t i = 0; i < n; ++i) {
      e.indices.push_back(static_cast<int64_t>(img[i][0][0][0].item<float>()));
      e.labels.push_back(b->labels[i].item<int64_t>());
    }
    const float* p = img.data_ptr<float>();
    e.values.insert(e.values.end(), p, p + img.numel());
  }
  return e;
}

sgs::LoaderOptions options(int64_t batch, int64_t workers, uint64_t seed = 3) {
  sgs::LoaderOptions o;
  o.batch_size = batch;
  o.workers = workers;
  o.seed = seed;
  return o;
}

}  // namespace

TEST_CASE("loader: an epoch visits a seeded permutation, in batches of batch_size") {
  auto split = std::make_shared<FakeSplit>(103);
  sgs::Loader loader(split, options(10, 2));
  CHECK(loader.batches_per_epoch() == 11);
  Epoch e0 = run_epoch(loader, 0);
  CHECK(e0.batch_sizes == std::vector<int64_t>{10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3});
  std::vector<int64_t> sorted = e0.indices;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 103; ++i) CHECK(sorted[i] == i);
  for (std::size_t i = 0; i < e0.indices.size(); ++i) CHECK(e0.labels[i] == e0.indices[i] % 10);
  Epoch e1 = run_epoch(loader, 1);
  CHECK(e1.indices != e0.indices);  // reshuffled each epoch
  CHECK(run_epoch(loader, 0).values == e0.values);  // epochs replay exactly
  sgs::Loader other_seed(split, options(10, 2, 4));
  CHECK(run_epoch(other_seed, 0).indices != e0.indices);

  auto o = options(10, 1);
  o.drop_last = true;
  sgs::Loader dropping(split, o);
  CHECK(dropping.batches_per_epoch() == 10);
  CHECK(run_epoch(dropping, 0).indices.size() == 100);

  o.shuffle = false;
  o.augment = false;
  sgs::Loader ordered(split, o);
  Epoch e = run_epoch(ordered, 5);
  for (int64_t i = 0; i < 100; ++i) CHECK(e.indices[i] == i);
  CHECK(e.values[2] == 0.0f);  // augment flag passed through
  CHECK(e0.values[2] == 1.0f);
}

TEST_CASE("loader: the same seed gives the same batches whatever the worker count") {
  auto fake = std::make_shared<FakeSplit>(57, -1, 50);
  auto synthetic = make_dataset("synthetic", {{"size", 8}, {"train_size", 64}, {"test_size", 0},
                                              {"random_crop_padding", 2}, {"hflip", true}, {"cutout", 3}})
                       ->train();
  for (auto split : {std::shared_ptr<const sgs::Split>(fake), synthetic}) {
    sgs::Loader base(split, options(8, 0));
    Epoch ref0 = run_epoch(base, 0), ref2 = run_epoch(base, 2);
    for (int64_t workers : {1, 2, 3, 5}) {
      INFO("workers " << workers);
      auto o = options(8, workers);
      o.prefetch = workers == 5 ? 2 : 4;
      sgs::Loader loader(split, o);
      Epoch e0 = run_epoch(loader, 0), e2 = run_epoch(loader, 2);
      CHECK(e0.values == ref0.values);
      CHECK(e0.labels == ref0.labels);
      CHECK(e2.values == ref2.values);
    }
  }
}

TEST_CASE("loader: ranks take their slice of each global batch, with the same examples and seeds") {
  auto split = std::make_shared<FakeSplit>(45);
  const int64_t world = 3, batch = 4;
  sgs::Loader whole(split, options(batch * world, 2));
  Epoch all = run_epoch(whole, 1);
  std::vector<Epoch> ranks;
  for (int64_t r = 0; r < world; ++r) {
    auto o = options(batch, 1);
    o.rank = r;
    o.world_size = world;
    sgs::Loader loader(split, o);
    CHECK(loader.batches_per_epoch() == 4);
    ranks.push_back(run_epoch(loader, 1));
  }
  // Global batches of 12: three full, then 9 examples split 3/3/3.
  for (int64_t r = 0; r < world; ++r) CHECK(ranks[r].batch_sizes == std::vector<int64_t>{4, 4, 4, 3});
  std::vector<float> merged;
  std::vector<std::size_t> at(world, 0);
  for (std::size_t b = 0; b < 4; ++b)
    for (int64_t r = 0; r < world; ++r) {
      const std::size_t n = static_cast<std::size_t>(ranks[r].batch_sizes[b]) * 3;
      merged.insert(merged.end(), ranks[r].values.begin() + at[r], ranks[r].values.begin() + at[r] + n);
      at[r] += n;
    }
  CHECK(merged == all.values);
}

TEST_CASE("loader: restarting an epoch mid-way abandons the old one") {
  auto split = std::make_shared<FakeSplit>(200, -1, 20);
  sgs::Loader loader(split, options(16, 2));
  loader.start_epoch(0);
  REQUIRE(loader.next());
  REQUIRE(loader.next());
  Epoch e1 = run_epoch(loader, 1);  // starts epoch 1 while workers are busy with epoch 0
  sgs::Loader fresh(split, options(16, 0));
  CHECK(e1.values == run_epoch(fresh, 1).values);
}

TEST_CASE("loader: a worker's DataError is rethrown by next(), in batch order") {
  auto split = std::make_shared<FakeSplit>(40, 17);
  for (int64_t workers : {0, 1, 3}) {
    INFO("workers " << workers);
    auto o = options(5, workers);
    o.shuffle = false;
    sgs::Loader loader(split, o);
    loader.start_epoch(0);
    for (int b = 0; b < 3; ++b) REQUIRE(loader.next());
    CHECK_THROWS_WITH_AS(loader.next(), "fake: example 17.bin: cannot decode", sgs::DataError);
  }
}

TEST_CASE("loader: misuse and bad options are refused by name") {
  auto split = std::make_shared<FakeSplit>(10);
  sgs::Loader loader(split, options(4, 1));
  CHECK_THROWS_AS(loader.next(), std::logic_error);
  CHECK_THROWS_WITH_AS(sgs::Loader(split, options(0, 1)), "loader: batch_size must be >= 1, got 0", sgs::ConfigError);
  auto o = options(4, 1);
  o.rank = 2;
  o.world_size = 2;
  CHECK_THROWS_WITH_AS(sgs::Loader(split, o), "loader: rank must be in [0, world_size), got 2", sgs::ConfigError);
  CHECK_THROWS_WITH_AS(sgs::Loader(nullptr, options(4, 1)), "loader: no split to load (null)", sgs::ConfigError);
}

TEST_CASE("loader: sample seeds differ by seed, epoch and position") {
  std::set<uint64_t> seeds;
  for (uint64_t s = 0; s < 4; ++s)
    for (int64_t e = 0; e < 4; ++e)
      for (int64_t p = 0; p < 64; ++p) seeds.insert(sgs::sample_seed(s, e, p));
  CHECK(seeds.size() == 4 * 4 * 64);
}

TEST_CASE("loader: batches of a real dataset are normalised float tensors") {
  auto d = make_dataset("synthetic", {{"size", 10}, {"channels", 1}, {"train_size", 50}, {"test_size", 0}});
  sgs::Loader loader(d->train(), options(16, 2));
  loader.start_epoch(0);
  auto b = loader.next();
  REQUIRE(b);
  CHECK(b->images.sizes().vec() == std::vector<int64_t>{16, 1, 10, 10});
  CHECK(b->labels.sizes().vec() == std::vector<int64_t>{16});
  CHECK(b->labels.min().item<int64_t>() >= 0);
  CHECK(b->labels.max().item<int64_t>() < 10);
  CHECK(std::fabs(b->images.mean().item<float>()) < 0.5);
}
