// Fusing a structurally reparameterized model into the plain one (`sgs fuse`):
// the same architecture built with plain convs whose weight and bias are the
// branched blocks' fused() ones, every other parameter and buffer (BatchNorms
// after the blocks, linear layers) copied by name. Spatial convs get a bias
// where the block's fused_has_bias() (acb, dbb, repvgg, dyrep), and a
// BatchNorm after them only where the run's model has one: a block that
// replaced conv + BN (acb, dbb, repvgg by default) becomes one conv with bias,
// the authors' deployed form.
#pragma once

#include <sgs/assembly.h>
#include <sgs/conv.h>
#include <sgs/dataset.h>
#include <sgs/loader.h>
#include <sgs/model.h>
#include <sgs/run_file.h>
#include <sgs/strategy.h>

#include <memory>
#include <string>
#include <vector>

namespace sgs {

// Passes every make() and norm_after() to `inner` and remembers the blocks in
// the order made, and whether a BatchNorm follows each.
class RecordingConvFactory : public ConvFactory {
 public:
  explicit RecordingConvFactory(std::shared_ptr<ConvFactory> inner) : inner_(std::move(inner)) {}
  std::shared_ptr<ConvBlock> make(const ConvSpec& spec) override;
  bool norm_after(const ConvSpec& spec) const override;
  const std::vector<std::shared_ptr<ConvBlock>>& blocks() const { return blocks_; }
  // One per block, in the same order (recorded by conv_bn; true for make()
  // calls that are not part of one).
  const std::vector<bool>& norms_after() const { return norms_after_; }

 private:
  std::shared_ptr<ConvFactory> inner_;
  std::vector<std::shared_ptr<ConvBlock>> blocks_;
  mutable std::vector<bool> norms_after_;
};

// What the i-th conv of a fused model is: a plain conv with or without bias,
// with or without a BatchNorm after it.
struct FusedConv {
  bool bias = false;
  bool norm_after = true;
};

// Plain convs for a fused model: the i-th conv as units[i] says (past the
// list's end: spec.bias, a BatchNorm after).
class FusedConvFactory : public ConvFactory {
 public:
  explicit FusedConvFactory(std::vector<FusedConv> units) : units_(std::move(units)) {}
  std::shared_ptr<ConvBlock> make(const ConvSpec& spec) override;
  bool norm_after(const ConvSpec& spec) const override;

 private:
  std::vector<FusedConv> units_;
  size_t next_ = 0;  // the conv make() builds next
};

// The run file of a finished run, for the verbs that act on one (export,
// quantize). Throws ConfigError naming DIR when it is no run directory or
// its run has not completed.
RunFile finished_run_file(const std::string& dir);

// A run's model, rebuilt from DIR/config.json (model and strategy slots) with
// DIR/checkpoint.pt's weights (key "model"), in eval mode.
struct RunModel {
  Json config;  // resolved
  std::shared_ptr<Dataset> dataset;
  ModelSpec spec;
  std::unique_ptr<Strategy> strategy;
  std::shared_ptr<Model> model;
  std::vector<std::shared_ptr<ConvBlock>> made;  // its conv blocks in construction order
  std::vector<bool> norms_after;                 // whether the model's BatchNorm follows each
  std::string warning;  // a line to print: the checkpoint predates run identities ("" otherwise)
};
// Throws ConfigError when the checkpoint belongs to another run (sgs/checkpoint_file.h).
RunModel load_run_model(const std::string& dir, const torch::Device& device = torch::kCPU);

// The fused plain model of `run` (eval mode, on the run model's device).
// Throws std::runtime_error when the two builds disagree (geometry, names).
std::shared_ptr<Model> fuse_model(const RunModel& run);

// What a finished run is evaluated on: its test set, else its validation
// split, read in order without augmentation in eval batches. Throws
// DataError, `who` first, when the dataset has neither.
struct EvaluationSplit {
  std::string name;  // "test" or "val"
  std::shared_ptr<const Split> split;
  LoaderOptions loader;
};
EvaluationSplit evaluation_split(const RunModel& run, int64_t workers, const std::string& who);

// Both models over the same batches (eval mode, no grad).
struct FuseCheck {
  std::string split;  // "test" or "val"
  int64_t images = 0;
  double branched_acc = 0, fused_acc = 0, branched_loss = 0, fused_loss = 0;
  double max_abs_diff = 0;   // max |logit difference|
  double max_abs_logit = 0;  // max |logit| of the branched model (the scale)
};
// On the run's test set, or its validation split when it has no test set.
// Throws DataError when it has neither.
FuseCheck compare_on_dataset(const RunModel& run, Model& fused, int64_t workers = 1);

}  // namespace sgs
