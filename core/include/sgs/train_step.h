// One training step, the same for the trainer and the benchmarks: forward and
// loss under autocast, backward of the (scaled) loss, then the gradients
// reduced over ranks, unscaled, clipped and handed to the strategy before the
// optimizer steps.
#pragma once

#include <sgs/precision.h>

#include <torch/nn/functional/loss.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <vector>

namespace sgs {

class Model;

struct StepOptions {
  Precision precision = Precision::Fp32;
  double label_smoothing = 0.0;
  double grad_clip_norm = 0.0;  // 0 = off
};

struct StepHooks {
  // This rank's mean loss is multiplied by this before backward (data
  // parallelism: its share of an uneven last global batch); 1 otherwise.
  double loss_weight = 1.0;
  std::function<void()> reduce_gradients;  // after backward (all-reduce over ranks)
  std::function<void()> after_backward;    // the strategy's: sees unscaled, clipped gradients
  std::function<void()> after_step;        // the strategy's, after the optimizer step
};

class TrainStep {
 public:
  // `scaler`: null, or the loss scaler of fp16 training (owned by the caller).
  TrainStep(Model& model, torch::optim::Optimizer& optimizer, const torch::Device& device, StepOptions options,
            LossScaler* scaler = nullptr);

  struct Result {
    torch::Tensor loss;    // the unscaled mean loss, float32, detached
    torch::Tensor logits;  // detached
    bool stepped = true;   // false: the scaler found an inf or NaN and skipped the step
  };
  // `params`: the model's parameters (gradients are set to none first).
  Result run(const std::vector<torch::Tensor>& params, const torch::Tensor& images, const torch::Tensor& labels,
             const StepHooks& hooks = {});

 private:
  Model& model_;
  torch::optim::Optimizer& optimizer_;
  torch::Device device_;
  StepOptions options_;
  LossScaler* scaler_;
  torch::nn::functional::CrossEntropyFuncOptions loss_options_;
};

}  // namespace sgs
