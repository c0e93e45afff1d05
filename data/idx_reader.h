// The IDX format of MNIST and Fashion-MNIST (LeCun et al., yann.lecun.com/exdb/mnist):
// a big-endian header (magic 0x00000803 for unsigned-byte 3-d images,
// 0x00000801 for 1-d labels, then one int32 per dimension) and the raw bytes.
#pragma once

#include "common.h"

#include <string>

namespace sgs::data {

// <root>/<stem>-images-idx3-ubyte and <stem>-labels-idx1-ubyte, each plain or
// with .gz; `stem` is "train" or "t10k". Throws DataError naming the file.
ImageArray read_idx_split(const std::string& dataset, const std::string& root, const std::string& stem,
                          int64_t num_classes);

// The dataset plugin shared by mnist and fashion_mnist (key "root" plus the
// common keys): 1x28x28 images, 10 classes, train and test (t10k) splits.
std::shared_ptr<Dataset> load_idx_dataset(const std::string& name, FolderOptions options, uint64_t seed,
                                          const Defaults& defaults);

}  // namespace sgs::data
