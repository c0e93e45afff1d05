// fashion_mnist: Zalando's Fashion-MNIST (Xiao et al. 2017), 60000 train +
// 10000 test 28x28 grey images of 10 clothing classes, in MNIST's IDX format;
// normalisation (0.2860, 0.3530).
#include "idx_reader.h"

namespace {

const sgs::data::Defaults& defaults() {
  static const sgs::data::Defaults d{{0.2860}, {0.3530}, 0, false};
  return d;
}

struct FashionMnistOptions : sgs::data::FolderOptions {
  FashionMnistOptions() : FolderOptions(defaults()) { root = "/usr/share/datasets/fashion-mnist"; }
  static void declare(sgs::Declare<FashionMnistOptions>& d) {
    d.key(&sgs::data::FolderOptions::root, "root", "folder holding train-images-idx3-ubyte[.gz], ...").specific_to_run();
    declare_common(d, defaults());
  }
};

}  // namespace

SGS_REGISTER(sgs::DatasetKind, fashion_mnist, "Fashion-MNIST from IDX files (gzip or plain), 1x28x28, 10 classes",
             FashionMnistOptions,
             [](const FashionMnistOptions& o, uint64_t seed) {
               return sgs::data::load_idx_dataset("fashion_mnist", o, seed, defaults());
             });
