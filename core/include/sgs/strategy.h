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
#include <sgs/log_table.h>
#include <sgs/registry.h>

#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sgs {

class Model;
class RunLog;
class Communicator;

// Seconds spent on a kind of work, summed over the scopes that measure it:
//   { auto timed = ctx.scaling_time.measure(); ... }
class TimeTotal {
 public:
  class Scope {
   public:
    explicit Scope(TimeTotal& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
    ~Scope() { total_.seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    TimeTotal& total_;
    std::chrono::steady_clock::time_point start_;
  };
  [[nodiscard]] Scope measure() { return Scope(*this); }
  double seconds() const { return seconds_; }
  void reset(double seconds = 0) { seconds_ = seconds; }

 private:
  double seconds_ = 0;
};

// A pass of the model in eval mode without grad over `batches` training
// batches drawn with `draw_seed` (augmented like training); train mode is
// restored afterwards and BatchNorm running statistics are left untouched
// unless `prepare` says otherwise.
struct BatchPass {
  int64_t batches = 1;
  uint64_t draw_seed = 0;
  // Optional: receives every spatial conv's padded input.
  CaptureSink sink;
  // Optional: called after the model is put into eval mode; may put modules
  // back into training mode (their running statistics then update, e.g. to
  // recalibrate BatchNorms).
  std::function<void()> prepare;
};

// What the trainer hands every strategy.
struct StrategyContext {
  // The network.
  Model* model = nullptr;
  // The spatial (kernel > 1x1 in both dimensions) conv blocks, network order.
  std::vector<std::shared_ptr<ConvBlock>> convs;
  // A strategy that changes the model's parameters hands them to it
  // (replace_parameters, sgs/optimizer.h).
  torch::optim::Optimizer* optimizer = nullptr;
  torch::Device device = torch::kCPU;
  // Whether the run synchronises BatchNorm statistics over the ranks (new
  // BatchNorms a strategy adds must then get `comm`).
  bool sync_batchnorm = false;

  // Where training stands.
  uint64_t seed = 0;
  int64_t epochs = 0;       // configured number of epochs
  int64_t epochs_done = 0;  // completed epochs (0 before the first)
  int64_t step = 0;         // global step

  // What the trainer offers.
  RunLog* log = nullptr;         // the strategy's tables (log_tables); null on ranks other than 0 and in unit tests
  Communicator* comm = nullptr;  // null when training in one process
  // Runs a BatchPass; returns the images seen (this rank).
  std::function<int64_t(const BatchPass& pass)> run_batches;
  // Time spent computing scalings in the current epoch (logged as the
  // metric scaling_seconds): strategies measure their updates into it.
  TimeTotal scaling_time;
  // Prints a line of progress (rank 0; nothing when the run is quiet). Null in unit tests.
  std::function<void(const std::string& line)> message;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  // Structural strategies: the factory building every conv. Null: plain convs.
  virtual std::shared_ptr<ConvFactory> conv_factory() { return nullptr; }
  // The strategy's own tables in run.h5 (sgs/run_log.h), declared before the
  // run file is created or resumed; its hooks append to them via ctx.log.
  virtual std::vector<LogTable> log_tables() const { return {}; }
  // Once, after the model and optimizer exist (and after a resume's load()).
  virtual void attach(StrategyContext& ctx) {}
  virtual void on_epoch_begin(StrategyContext& ctx) {}
  // After an epoch's last step and evaluation, before its metrics are
  // committed and its checkpoint written (ctx.epochs_done counts it); not
  // for an epoch an interrupt cut short.
  virtual void on_epoch_end(StrategyContext& ctx) {}
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
