// cifar10: 50000 train + 10000 test 32x32 colour images of 10 classes
// (Krizhevsky 2009), binary version: data_batch_1..5.bin and test_batch.bin,
// records of 1 label byte + 3072 pixel bytes. Normalisation: the training
// set's per-channel mean (0.4914, 0.4822, 0.4465) and std (0.2470, 0.2435, 0.2616).
#include "cifar_reader.h"

namespace {

const sgs::data::Defaults& defaults() {
  static const sgs::data::Defaults d{{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}, 4, true};
  return d;
}

const sgs::data::CifarFormat& format() {
  static const sgs::data::CifarFormat f{
      {10}, 0,
      {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
      {"test_batch.bin"}, "cifar-10-batches-bin"};
  return f;
}

struct Cifar10Options : sgs::data::FolderOptions {
  Cifar10Options() : FolderOptions(defaults()) {}
  static void declare(sgs::Declare<Cifar10Options>& d) {
    d.required(&sgs::data::FolderOptions::root, "root", "folder holding data_batch_1.bin, ... (or cifar-10-batches-bin/)").specific_to_run();
    declare_common(d, defaults());
  }
};

}  // namespace

SGS_REGISTER(sgs::DatasetKind, cifar10, "CIFAR-10 binary version (data_batch_1..5.bin, test_batch.bin), 3x32x32, 10 classes",
             Cifar10Options,
             [](const Cifar10Options& o, uint64_t seed) {
               return sgs::data::load_cifar_dataset("cifar10", o, seed, defaults(), format());
             });
