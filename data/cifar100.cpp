// cifar100: 50000 train + 10000 test 32x32 colour images of 100 classes
// (Krizhevsky 2009), binary version: train.bin and test.bin, records of a
// coarse label byte, a fine label byte (the one used) and 3072 pixel bytes.
// Normalisation: mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762).
#include "cifar_reader.h"

namespace {

const sgs::data::Defaults& defaults() {
  static const sgs::data::Defaults d{{0.5071, 0.4865, 0.4409}, {0.2673, 0.2564, 0.2762}, 4, true};
  return d;
}

const sgs::data::CifarFormat& format() {
  static const sgs::data::CifarFormat f{{20, 100}, 1, {"train.bin"}, {"test.bin"}, "cifar-100-binary"};
  return f;
}

struct Cifar100Options : sgs::data::FolderOptions {
  Cifar100Options() : FolderOptions(defaults()) {}
  static void declare(sgs::Declare<Cifar100Options>& d) {
    d.required(&sgs::data::FolderOptions::root, "root", "folder holding train.bin, test.bin (or cifar-100-binary/)").specific_to_run();
    declare_common(d, defaults());
  }
};

}  // namespace

SGS_REGISTER(sgs::DatasetKind, cifar100, "CIFAR-100 binary version (train.bin, test.bin), 3x32x32, 100 fine classes",
             Cifar100Options,
             [](const Cifar100Options& o, uint64_t seed) {
               return sgs::data::load_cifar_dataset("cifar100", o, seed, defaults(), format());
             });
