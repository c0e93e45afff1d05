// Collective operations between the ranks of a data-parallel run. Null where
// training runs in one process; implemented on c10d process groups.
#pragma once

#include <torch/types.h>

namespace sgs {

enum class ReduceOp { Sum, Min, Max };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In place, over all ranks.
  virtual void all_reduce(torch::Tensor& tensor, ReduceOp op) = 0;
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
};

}  // namespace sgs
