// mnist: handwritten digits, 60000 train + 10000 test 28x28 grey images in
// the IDX format (LeCun et al. 1998); normalisation (0.1307, 0.3081).
#include "idx_reader.h"

namespace {

const sgs::data::Defaults& defaults() {
  static const sgs::data::Defaults d{{0.1307}, {0.3081}, 0, false};
  return d;
}

struct MnistOptions : sgs::data::FolderOptions {
  MnistOptions() : FolderOptions(defaults()) {}
  static void declare(sgs::Declare<MnistOptions>& d) {
    d.required(&sgs::data::FolderOptions::root, "root", "folder holding train-images-idx3-ubyte[.gz], ...").specific_to_run();
    declare_common(d, defaults());
  }
};

}  // namespace

SGS_REGISTER(sgs::DatasetKind, mnist, "MNIST digits from IDX files (gzip or plain), 1x28x28, 10 classes",
             MnistOptions,
             [](const MnistOptions& o, uint64_t seed) {
               return sgs::data::load_idx_dataset("mnist", o, seed, defaults());
             });
