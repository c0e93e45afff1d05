// Strategies: one plugin kind for both families the paper compares.
//  - gradient scalings (mutual_information, autocorrelation, alpha_beta, fixed)
//    act through the hooks: on_epoch_begin (recompute G_l), after_backward
//    (G_l ⊙ grad), after_step (G_l ⊙ update);
//  - structural reparameterizations (masked_branches, acb, dbb, repvgg, dyrep)
//    return a conv_factory() that builds every conv + BatchNorm unit; dyrep
//    also grows and cuts its blocks through the hooks.
// The trainer calls every hook of every strategy and never branches on which
// family it runs, so "SGS vs ACB vs DBB vs baseline" is one config axis.
#pragma once

#include <sgs/conv.h>
#include <sgs/registry.h>

#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

namespace sgs {

class Model;
class RunLog;
class Communicator;

struct StrategyContext {
  Model* model = nullptr;
  // The spatial (kernel > 1x1 in both dimensions) conv blocks, network order.
  std::vector<std::shared_ptr<ConvBlock>> convs;
  torch::optim::Optimizer* optimizer = nullptr;
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;
  int64_t epochs = 0;       // configured number of epochs
  int64_t epochs_done = 0;  // completed epochs (0 before the first)
  int64_t step = 0;         // global step
  RunLog* log = nullptr;    // null on ranks other than 0 and in unit tests
  Communicator* comm = nullptr;  // null when training in one process
  // Runs the model in eval mode without grad over `batches` training batches
  // drawn with `draw_seed` (augmented like training), handing every spatial
  // conv's padded input to `sink`; then restores train mode. BatchNorm
  // running statistics are left untouched. Returns the images seen (this rank).
  std::function<int64_t(int64_t batches, uint64_t draw_seed, const CaptureSink& sink)> gather;
  // The same pass without a sink, for recalibrating BatchNorms: `prepare`,
  // called after the model is put into eval mode, may put modules back into
  // training mode (their running statistics then update); train mode is
  // restored afterwards. Returns the images seen (this rank).
  std::function<int64_t(int64_t batches, uint64_t draw_seed, const std::function<void()>& prepare)> run_batches;
  // Whether the run synchronises BatchNorm statistics over the ranks (new
  // BatchNorms a strategy adds must then get `comm`).
  bool sync_batchnorm = false;
  // Seconds spent computing scalings in the current epoch (strategies add).
  double* scaling_seconds = nullptr;
  // Prints a line of progress (rank 0; nothing when the run is quiet). Null in unit tests.
  std::function<void(const std::string& line)> message;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  // Structural strategies: the factory building every conv. Null: plain convs.
  virtual std::shared_ptr<ConvFactory> conv_factory() { return nullptr; }
  // Once, after the model and optimizer exist (and after a resume's load()).
  virtual void attach(StrategyContext& ctx) {}
  virtual void on_epoch_begin(StrategyContext& ctx) {}
  // Between backward() (and gradient clipping) and optimizer.step().
  virtual void after_backward(StrategyContext& ctx) {}
  virtual void after_step(StrategyContext& ctx) {}
  // State that must survive a resume (e.g. the current scalings, a grown
  // graph). load() runs before the model's weights are loaded, so that a
  // strategy can first rebuild the structure they belong to; the trainer
  // then hands the optimizer the model's parameters (replace_parameters).
  virtual void save(torch::serialize::OutputArchive& archive) const {}
  virtual void load(torch::serialize::InputArchive& archive) {}
};

struct StrategyKind {
  static constexpr const char* kName = "strategy";
  using Factory = std::function<std::unique_ptr<Strategy>(const Options&)>;
};

}  // namespace sgs
