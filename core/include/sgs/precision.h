// Mixed precision and memory format of a run (the run keys `precision` and
// `memory_format`): autocast around the forward pass and the loss, the loss
// scaler of fp16 training, and parameters put into channels-last order.
// Master weights, gradients and optimizer state stay float32 in every
// precision; only the computations autocast lists run in bf16 or fp16.
#pragma once

#include <torch/nn/module.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include <string>
#include <vector>

namespace sgs {

enum class Precision { Fp32, Bf16, Fp16 };

// "fp32", "bf16", "fp16"; anything else is a ConfigError naming `precision`.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision precision);

// A ConfigError naming `precision` where the device cannot train in it:
// fp16 needs CUDA (CPU autocast computes in bf16 only).
void check_precision(Precision precision, const torch::Device& device);

// "contiguous" or "channels_last"; anything else is a ConfigError naming `memory_format`.
c10::MemoryFormat parse_memory_format(const std::string& name);

// While it lives, operations on `device` run under autocast in the
// precision's type (nothing happens for fp32). On destruction the previous
// autocast state returns and autocast's cache of cast weights is cleared, as
// PyTorch's `torch.autocast` does when its outermost context exits.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, Precision precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Undefined;
};

// Puts every 4-D parameter and buffer of `module` (and of its children) into
// `format`, in place: each tensor keeps its identity, so an optimizer holding
// it is unaffected. Tensors already in the format are left alone.
void set_memory_format(torch::nn::Module& module, c10::MemoryFormat format);

// Dynamic loss scaling (the semantics of PyTorch's GradScaler): the loss is
// multiplied by the scale before backward; the gradients are divided by it
// before anything reads them (clipping, a strategy's after_backward); a step
// whose gradients hold an inf or NaN is skipped and the scale shrinks by
// `backoff`; after `growth_interval` steps in a row without one it grows by
// `growth`.
class LossScaler {
 public:
  struct Options {
    double init_scale = 65536.0;
    double growth = 2.0;
    double backoff = 0.5;
    int64_t growth_interval = 2000;
  };
  LossScaler();
  explicit LossScaler(Options options);

  double scale() const { return scale_; }
  int64_t good_steps() const { return good_steps_; }
  torch::Tensor scale_loss(const torch::Tensor& loss) const { return loss * scale_; }
  // Divides the defined gradients of `params` by the scale in place; returns
  // whether every one of them is finite (one host synchronisation).
  bool unscale(const std::vector<torch::Tensor>& params) const;
  // After a step: `finite` as unscale returned it.
  void update(bool finite);

  // State kept in checkpoints: keys "loss_scale" and "loss_scale_good_steps".
  void save(torch::serialize::OutputArchive& archive) const;
  // Reads what save wrote; an archive without it leaves the scaler as it is.
  void load(torch::serialize::InputArchive& archive);

 private:
  Options options_;
  double scale_;
  int64_t good_steps_ = 0;
};

}  // namespace sgs
