// Pieces of a training run the trainer (trainer.cpp) is built from: where a
// run stands (saved in the checkpoint), evaluation, the device, the kernel
// magnitude it logs.
#pragma once

#include <sgs/communicator.h>
#include <sgs/conv.h>
#include <sgs/loader.h>
#include <sgs/model.h>
#include <sgs/precision.h>

#include <torch/torch.h>

#include <string>

namespace sgs {

// Where a run stands; saved in the checkpoint so that a resumed run equals an
// uninterrupted one.
struct Position {
  int64_t epochs_done = 0;     // completed epochs
  int64_t batch = 0;           // batches done in the current epoch
  int64_t step = 0;            // global step
  double loss_sum = 0, correct = 0, seen = 0;  // current epoch's running sums
  double epoch_seconds = 0;    // training time spent in the current epoch so far
  double scaling_seconds = 0;  // scaling time in the current epoch so far (StrategyContext::scaling_time when saved)
  double train_seconds = 0;    // training time of all finished epochs
  double best_val_acc = -1;

  // Every field with its checkpoint key: the one list save and load share.
  template <class F>
  void fields(F&& field) {
    field("epochs_done", epochs_done);
    field("batch", batch);
    field("step", step);
    field("loss_sum", loss_sum);
    field("correct", correct);
    field("seen", seen);
    field("epoch_seconds", epoch_seconds);
    field("scaling_seconds", scaling_seconds);
    field("train_seconds", train_seconds);
    field("best_val_acc", best_val_acc);
  }
  void save(torch::serialize::OutputArchive& archive);
  void load(torch::serialize::InputArchive& archive);
};

struct Evaluation {
  double loss = 0, acc = 0;
};

// Over this rank's shard of the split; with `comm`, the sums are reduced so
// every rank returns the whole split's figures. The forward pass runs in the
// run's precision.
Evaluation evaluate(Model& model, Loader& loader, const torch::Device& device, Precision precision,
                    Communicator* comm);

// Mean |W| over output and input channels, divided by its own mean (docs/method.md 6).
torch::Tensor kernel_magnitude(ConvBlock& block);

torch::Device resolve_device(const std::string& name);

// Every BatchNorm of `module` reduces its statistics over the ranks of `comm`.
// Only sgs::BatchNorm2d can (LibTorch modules have no forward hooks): a
// torch::nn BatchNorm is a ConfigError naming `sync_batchnorm` and the module.
void sync_batchnorms_over(torch::nn::Module& module, Communicator* comm);

// The model's parameter count, and the count once every conv block is fused
// into one convolution (the deployed model).
std::pair<int64_t, int64_t> parameter_counts(Model& model, const std::vector<std::shared_ptr<ConvBlock>>& blocks);

}  // namespace sgs
