// The "binary version" of CIFAR-10 and CIFAR-100 (Krizhevsky 2009,
// cs.toronto.edu/~kriz/cifar.html): fixed-size records of label byte(s)
// followed by 3072 pixel bytes, the R, G and B planes of a 32x32 image in
// row-major order. CIFAR-10 records hold one label byte; CIFAR-100 records a
// coarse (20 classes) then a fine (100 classes) byte.
#pragma once

#include "common.h"

#include <string>
#include <vector>

namespace sgs::data {

struct CifarFormat {
  std::vector<int64_t> label_classes;  // classes of each label byte, in record order
  int label_used = 0;                   // which label byte is the example's label
  std::vector<std::string> train_files, test_files;
  std::string folder;  // the archive's folder, e.g. "cifar-10-batches-bin"
};

// The records of `files`, concatenated. Throws DataError naming the file
// (missing, not a whole number of records, label out of range).
ImageArray read_cifar_files(const std::string& dataset, const std::vector<std::string>& files,
                            const CifarFormat& format);

// The dataset plugin shared by cifar10 and cifar100 (key "root" plus the
// common keys). `root` holds the .bin files, or the archive's folder does.
std::shared_ptr<Dataset> load_cifar_dataset(const std::string& name, FolderOptions options, uint64_t seed,
                                            const Defaults& defaults, const CifarFormat& format);

}  // namespace sgs::data
