// Datasets: a plugin kind. A dataset reads its official on-disk format and
// exposes up to three splits (train, val carved out of train, test). Examples
// are decoded and augmented one at a time straight into a batch buffer, each
// with its own seed, so that a batch does not depend on which worker built it
// nor on how a global batch is sharded over ranks.
#pragma once

#include <sgs/registry.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sgs {

struct DatasetInfo {
  std::string name;
  int64_t channels = 0;
  int64_t height = 0, width = 0;  // size of the examples as the model sees them
  int64_t num_classes = 0;
  std::vector<double> mean, std;  // per-channel normalisation applied by fill()
};

class Split {
 public:
  virtual ~Split() = default;
  virtual int64_t size() const = 0;
  virtual int64_t label(int64_t index) const = 0;
  // [C, H, W] of the examples fill() writes (the loader sizes batches by it).
  virtual std::array<int64_t, 3> shape() const = 0;
  // Writes example `index` as normalised float32 [C, H, W] into `out` and
  // returns its label. `augment` selects the training transforms; every
  // random draw comes from `sample_seed`. Thread-safe. Throws DataError
  // naming the file for an unreadable example.
  virtual int64_t fill(int64_t index, bool augment, uint64_t sample_seed, float* out) const = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual const DatasetInfo& info() const = 0;
  virtual std::shared_ptr<const Split> train() const = 0;  // without the val carve-out
  virtual std::shared_ptr<const Split> val() const = 0;    // nullptr when val_fraction = 0
  virtual std::shared_ptr<const Split> test() const = 0;   // nullptr when there is none
};

struct DatasetKind {
  static constexpr const char* kName = "dataset";
  // `seed`: the run's seed (subset and val split draws derive from it).
  using Factory = std::function<std::shared_ptr<Dataset>(const Options&, uint64_t seed)>;
};

}  // namespace sgs
