// BatchNorm2d of the models and structural blocks: torch::nn::BatchNorm2d
// (same parameters, buffers and checkpoint names) that can synchronise its
// batch statistics over the ranks of a data-parallel run (`sync_batchnorm`).
//
// Synchronised, in training mode, over all ranks' inputs x (N = all pixels of
// all ranks per channel):
//   mean = sum x / N, var = sum (x - mean)^2 / N        (two all-reduces)
//   y = (x - mean) / sqrt(var + eps) * weight + bias
//   running stats updated with mean and the unbiased var * N / (N - 1)
// and the backward all-reduces sum dy and sum dy * xhat so that dx is the
// gradient of the sum of all ranks' losses, as one process over the union of
// the batches computes it (Ioffe & Szegedy 2015, eq. of the backward pass).
// Without a communicator, in eval mode, or with one rank it computes what
// torch::nn::BatchNorm2d computes (the same ATen call).
#pragma once

#include <sgs/communicator.h>

#include <torch/nn/cloneable.h>
#include <torch/nn/options/batchnorm.h>
#include <torch/nn/pimpl.h>

#include <utility>

namespace sgs {

// Its own module rather than a subclass of torch::nn::BatchNorm2dImpl: that
// class's forward is not virtual, and LibTorch does not export all of its
// base's members. Same options, parameter and buffer names, initialisation
// and eval/train behaviour as torch::nn::BatchNorm2d.
class BatchNorm2dImpl : public torch::nn::Cloneable<BatchNorm2dImpl> {
 public:
  explicit BatchNorm2dImpl(const torch::nn::BatchNormOptions& options);
  void reset() override;
  void reset_parameters();       // statistics and affine parameters
  void reset_running_stats();    // statistics only: mean 0, variance 1, no batches
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  // Null (the default): per-rank statistics.
  void set_communicator(Communicator* comm) { comm_ = comm; }
  Communicator* communicator() const { return comm_; }

  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias;                                   // undefined unless affine
  torch::Tensor running_mean, running_var, num_batches_tracked;  // undefined unless track_running_stats

 private:
  Communicator* comm_ = nullptr;
};
TORCH_MODULE(BatchNorm2d);

// Folding a BatchNorm in eval mode (structural blocks' fusion, sgs export):
// t = gamma / sqrt(var + eps) and the BN of a zero input, beta - mean * t,
// both [C], detached. Needs running statistics.
std::pair<torch::Tensor, torch::Tensor> bn_scale_shift(const BatchNorm2d& bn);

// The weight [out, ...] and bias [out] of `weight` (bias `bias`, may be
// undefined) followed by `bn`, in eval mode. Detached.
std::pair<torch::Tensor, torch::Tensor> fold_bn(const torch::Tensor& weight, const torch::Tensor& bias,
                                                const BatchNorm2d& bn);

}  // namespace sgs
