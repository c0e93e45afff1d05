// Loader: batches produced ahead of the trainer by worker threads.
//
// Epoch e visits a permutation of the split drawn from (seed, e) (or the
// natural order when shuffle is off). Example at position p of the epoch is
// augmented with the seed mix(seed, e, p), so the same seed gives the same
// batches whatever the worker count, and a global batch sharded over ranks
// (rank r takes positions [r*B, (r+1)*B) of each global batch of B*world;
// of a last, partial global batch of m examples, [r*m/world, (r+1)*m/world))
// holds exactly the examples and augmentations of the unsharded one.
#pragma once

#include <sgs/dataset.h>

#include <torch/types.h>

#include <memory>
#include <optional>

namespace sgs {

struct Batch {
  torch::Tensor images;  // float32 [B, C, H, W], normalised, CPU (channels-last order when asked)
  torch::Tensor labels;  // int64 [B], CPU
};

struct LoaderOptions {
  int64_t batch_size = 128;  // per rank
  bool shuffle = true;
  bool augment = true;
  bool drop_last = false;
  uint64_t seed = 0;
  int64_t workers = 2;   // 0: batches are built in next()
  int64_t prefetch = 4;  // batches buffered ahead, in all
  int64_t rank = 0, world_size = 1;
  bool channels_last = false;  // images in NHWC order (the batch's strides say so)
  bool pin_memory = false;     // page-locked images and labels, for asynchronous copies to a GPU
};

class Loader {
 public:
  Loader(std::shared_ptr<const Split> split, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts epoch `epoch` (any order; restarting abandons the current one).
  void start_epoch(int64_t epoch);
  // The next batch of the epoch, or nullopt at its end. Rethrows a worker's
  // DataError here, so that the run stops cleanly with the file's name.
  std::optional<Batch> next();
  int64_t batches_per_epoch() const;
  const Split& split() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The seed of the example at position `position` of epoch `epoch`.
uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t position);

}  // namespace sgs
