#include "progress.h"
#include "training.h"

#include <sgs/assembly.h>
#include <sgs/checkpoint_file.h>
#include <sgs/config.h>
#include <sgs/dataset.h>
#include <sgs/distributed.h>
#include <sgs/errors.h>
#include <sgs/export_graph.h>
#include <sgs/fuse.h>
#include <sgs/io.h>
#include <sgs/loader.h>
#include <sgs/model.h>
#include <sgs/norm.h>
#include <sgs/optimizer.h>
#include <sgs/precision.h>
#include <sgs/quantize.h>
#include <sgs/run_dir.h>
#include <sgs/interrupt.h>
#include <sgs/run_file.h>
#include <sgs/run_log.h>
#include <sgs/schedule.h>
#include <sgs/strategy.h>
#include <sgs/train_step.h>
#include <sgs/trainer.h>

#include <torch/torch.h>

#include <sched.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

namespace fs = std::filesystem;

namespace sgs {

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

torch::Tensor scalar(int64_t v) { return torch::tensor(v, torch::kInt64); }

class Trainer {
 public:
  Trainer(const Json& config, const RunOptions& options)
      : config_(config),
        options_(options),
        comm_(options.comm != nullptr && options.comm->world_size() > 1 ? options.comm : nullptr),
        rank_(comm_ ? comm_->rank() : 0),
        world_(comm_ ? comm_->world_size() : 1),
        progress_(options.progress, options.quiet || rank_ != 0, options.progress_every) {}
  // RunChecker's: builds and attaches on the CPU, writes nothing.
  Trainer(const Json& config, DeviceRules rules, std::shared_ptr<Dataset> dataset)
      : Trainer(config, quiet_options()) {
    checking_ = true;
    rules_ = rules;
    dataset_ = std::move(dataset);
  }

  RunResult run();
  void check();

 private:
  void build();
  void with_source(const std::function<void()>& step) const;
  std::string prepare_directory(const fs::path& out);
  void complete_run_file(const fs::path& h5);
  void quantize_at_end(const fs::path& out);
  RunResult run_in(const fs::path& out, const fs::path& h5, const fs::path& ckpt, const fs::path& cfg);
  void end_epoch(int64_t epoch, const fs::path& ckpt);
  void mark(const std::exception& e, RunStatus status, bool with_summary) noexcept;
  void save_checkpoint(const fs::path& path);
  void load_checkpoint(const std::string& bytes, const fs::path& path);
  void sync_batchnorms();
  void together(const std::function<void()>& step);
  void train_epoch();
  void log_kernel_magnitudes();
  void conform_model();
  LoaderOptions loader_options(int64_t batch_size, uint64_t seed, int64_t workers) const;
  std::map<std::string, double> summary() const;
  int64_t run_batches(const BatchPass& pass);

  Json config_;
  RunSettings settings_;  // the run-level keys of config_, read once
  RunOptions options_;
  Communicator* comm_;  // null in one process
  int rank_, world_;
  Progress progress_;
  torch::Device device_ = torch::kCPU;
  int64_t threads_ = 1, epochs_ = 1;
  uint64_t seed_ = 0;
  std::shared_ptr<Dataset> dataset_;
  std::unique_ptr<Strategy> strategy_;
  std::shared_ptr<Model> model_;
  std::vector<std::shared_ptr<ConvBlock>> blocks_, spatial_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  Precision precision_ = Precision::Fp32;
  c10::MemoryFormat memory_format_ = c10::MemoryFormat::Contiguous;
  std::unique_ptr<LossScaler> scaler_;  // fp16 only
  std::unique_ptr<TrainStep> step_;
  std::unique_ptr<Schedule> schedule_;
  std::unique_ptr<Loader> train_loader_, val_loader_, test_loader_;
  std::unique_ptr<RunLog> log_;
  StrategyContext ctx_;
  Position pos_;
  std::map<std::string, double> last_metrics_;
  bool evaluate_val_ = false, evaluate_test_ = false;
  bool stop_requested_ = false;
  bool checking_ = false;  // RunChecker
  DeviceRules rules_ = DeviceRules::Here;
  static RunOptions quiet_options() {
    RunOptions o;
    o.quiet = true;
    return o;
  }
  RunDirLock lock_;  // rank 0: this run directory's lock
  RunIdentity identity_;  // rank 0: the run's id and config digest, recorded in every checkpoint
  bool created_dir_ = false;
};

void Trainer::build() {
  settings_ = RunSettings::of(config_);
  seed_ = static_cast<uint64_t>(settings_.seed);
  epochs_ = settings_.epochs;
  threads_ = settings_.threads;
  // The cores this process may run on (its affinity: a Slurm or container
  // allocation), shared by the local ranks.
  int64_t cores = std::thread::hardware_concurrency();
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) cores = CPU_COUNT(&allowed);
  cores = std::max<int64_t>(1, cores / std::max(1, options_.local_world_size));
  if (threads_ == 0) threads_ = cores;
  if (threads_ > cores && !checking_) {
    // More threads than cores only slows every step (they wait for each
    // other); the results do not depend on the count.
    progress_.message("threads: " + std::to_string(threads_) + " is more than the " + std::to_string(cores) +
                      " cores this run may use; using " + std::to_string(cores));
    threads_ = cores;
  }
  precision_ = parse_precision(settings_.precision);
  if (checking_) {
    // The device rules where the device is known: "cpu", or any device when
    // the run will train on this machine. The model is built on the CPU.
    if (settings_.device == "cpu" || rules_ == DeviceRules::Here)
      check_precision(precision_, resolve_device(settings_.device));
    device_ = torch::kCPU;
  } else {
    at::set_num_threads(static_cast<int>(threads_));
    device_ = resolve_device(settings_.device);
    if (device_.is_cuda() && comm_) {
      World w;
      w.local_rank = options_.local_rank;
      device_ = rank_device("cuda", w);
    }
    check_precision(precision_, device_);
  }
  memory_format_ = parse_memory_format(settings_.memory_format);
  if (DeploySettings::of(config_).int8 && !settings_.checkpoint)
    throw ConfigError("deploy.int8: needs checkpoint: true (the trained model is read back from checkpoint.pt)");
  if (device_.is_cuda()) at::globalContext().setBenchmarkCuDNN(settings_.cudnn_benchmark);
  const auto& reg = Registry::global();

  auto plugin = [&](const char* slot) { return config_[slot]["name"].get<std::string>(); };
  if (!dataset_) dataset_ = make_dataset(config_);
  strategy_ = make_strategy(config_);
  auto factory = strategy_->conv_factory();
  ConvFactory plain;
  model_ = build_model(config_, model_spec(*dataset_), factory ? *factory : plain);
  model_->to(device_);
  conform_model();
  if (settings_.sync_batchnorm) sync_batchnorms();
  blocks_ = conv_blocks(*model_);
  for (auto& b : blocks_)
    if (b->spec().spatial()) spatial_.push_back(b);

  optimizer_ = reg.factory<OptimizerKind>(plugin("optimizer"))(slot_options(config_, "optimizer"),
                                                               model_->parameters());

  if (precision_ == Precision::Fp16) scaler_ = std::make_unique<LossScaler>();
  StepOptions so;
  so.precision = precision_;
  so.label_smoothing = settings_.label_smoothing;
  so.grad_clip_norm = settings_.grad_clip_norm;
  step_ = std::make_unique<TrainStep>(*model_, *optimizer_, device_, so, scaler_.get());

  LoaderOptions lo = loader_options(settings_.batch_size, seed_, checking_ ? 0 : settings_.data_workers);
  train_loader_ = std::make_unique<Loader>(dataset_->train(), lo);
  if (train_loader_->batches_per_epoch() == 0) throw ConfigError("batch_size: larger than the training set");
  {
    // A last global batch smaller than the ranks would leave a rank without examples.
    const int64_t global = lo.batch_size * world_, last = dataset_->train()->size() % global;
    if (last != 0 && last < world_)
      throw ConfigError("batch_size: the last global batch holds " + std::to_string(last) + " examples, fewer than the " +
                        std::to_string(world_) + " ranks; change batch_size or the number of ranks");
  }
  LoaderOptions eval = lo;
  eval.batch_size = settings_.eval_batch_size;
  eval.shuffle = eval.augment = false;
  const std::string& what = settings_.evaluate;
  evaluate_val_ = (what == "val" || what == "both" || what == "auto") && dataset_->val() != nullptr;
  evaluate_test_ = (what == "test" || what == "both" || what == "auto") && dataset_->test() != nullptr;
  if ((what == "val" || what == "both") && dataset_->val() == nullptr)
    throw ConfigError("evaluate: '" + what + "' needs a validation split (dataset.val_fraction > 0)");
  if ((what == "test" || what == "both") && dataset_->test() == nullptr)
    throw ConfigError("evaluate: '" + what + "' but the dataset has no test set");
  if (evaluate_val_) val_loader_ = std::make_unique<Loader>(dataset_->val(), eval);
  if (evaluate_test_) test_loader_ = std::make_unique<Loader>(dataset_->test(), eval);

  ScheduleContext sc;
  sc.base_lr = optimizer_->param_groups().at(0).options().get_lr();  // the optimizer's own learning rate
  sc.steps_per_epoch = train_loader_->batches_per_epoch();
  sc.epochs = epochs_;
  schedule_ = reg.factory<ScheduleKind>(plugin("schedule"))(slot_options(config_, "schedule"), sc);

  ctx_.model = model_.get();
  ctx_.convs = spatial_;
  ctx_.optimizer = optimizer_.get();
  ctx_.device = device_;
  ctx_.seed = seed_;
  ctx_.epochs = epochs_;
  ctx_.comm = comm_;
  ctx_.run_batches = [this](const BatchPass& pass) { return run_batches(pass); };
  ctx_.sync_batchnorm = settings_.sync_batchnorm;
  ctx_.message = [this](const std::string& line) {
    if (rank_ == 0) progress_.message(line);
  };
}

LoaderOptions Trainer::loader_options(int64_t batch_size, uint64_t seed, int64_t workers) const {
  LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.seed = seed;
  lo.workers = workers;
  lo.rank = rank_;  // each rank takes its share of every global batch
  lo.world_size = world_;
  lo.channels_last = memory_format_ == c10::MemoryFormat::ChannelsLast;
  lo.pin_memory = device_.is_cuda();
  return lo;
}

// The model's parameters and buffers in the run's memory format (again after
// a strategy rebuilt blocks).
void Trainer::conform_model() {
  if (memory_format_ != c10::MemoryFormat::Contiguous) set_memory_format(*model_, memory_format_);
}

int64_t Trainer::run_batches(const BatchPass& pass) {
  const auto& sink = pass.sink;
  Loader loader(dataset_->train(), loader_options(settings_.batch_size, pass.draw_seed, 0));
  loader.start_epoch(0);
  torch::NoGradGuard no_grad;
  model_->eval();  // BatchNorm uses (and does not update) its running statistics
  if (pass.prepare) pass.prepare();
  if (sink)
    for (auto& b : spatial_) b->set_capture(sink);
  int64_t images = 0;
  try {
    for (int64_t i = 0; i < pass.batches; ++i) {
      auto batch = loader.next();
      if (!batch) break;
      if (batch->images.size(0) == 0) continue;
      AutocastGuard autocast(device_, precision_);  // the maps the sink sees come from the run's precision
      model_->forward(batch->images.to(device_, /*non_blocking=*/true));
      images += batch->images.size(0);
    }
  } catch (...) {
    for (auto& b : spatial_) b->set_capture(nullptr);
    model_->train();
    throw;
  }
  for (auto& b : spatial_) b->set_capture(nullptr);
  model_->train();
  return images;
}

void Trainer::save_checkpoint(const fs::path& path) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model, optimizer, strategy;
  model_->save(model);
  optimizer_->save(optimizer);
  strategy_->save(strategy);
  pos_.scaling_seconds = ctx_.scaling_time.seconds();
  if (scaler_) scaler_->save(archive);
  archive.write("model", model);
  archive.write("optimizer", optimizer);
  archive.write("strategy", strategy);
  pos_.save(archive);
  archive.write("world_size", scalar(static_cast<int64_t>(world_)));
  archive.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  write_identity(archive, identity_);
  // Serialised in memory, then written with the system's errors (disk full)
  // reported exactly and the previous checkpoint kept until the rename.
  std::string bytes;
  archive.save_to([&](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  write_file_atomically(path, bytes);
}

// `bytes`: the checkpoint file's contents (rank 0 reads it, every rank loads it).
void Trainer::load_checkpoint(const std::string& bytes, const fs::path& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size(), device_);
  } catch (const std::exception& e) {
    throw DataError(path.string() + ": cannot read the checkpoint: " + error_message(e));
  }
  if (rank_ == 0) {  // a checkpoint copied from another run is refused
    const std::string warning = check_checkpoint_identity(read_identity(archive), identity_, path.string());
    if (!warning.empty()) progress_.message("warning: " + warning);
  }
  // The global batch, hence the position and the schedule, depend on the ranks.
  torch::Tensor ranks;
  const int64_t saved_ranks = archive.try_read("world_size", ranks) ? ranks.item<int64_t>() : 1;
  if (saved_ranks != world_)
    throw ConfigError(path.string() + ": written by a run of " + std::to_string(saved_ranks) +
                      " rank(s); resume it with as many (--nproc " + std::to_string(saved_ranks) + "), not " +
                      std::to_string(world_));
  torch::serialize::InputArchive model, optimizer, strategy;
  archive.read("model", model);
  archive.read("optimizer", optimizer);
  archive.read("strategy", strategy);
  strategy_->load(strategy);  // first: it may rebuild the structure the weights belong to
  load_model_weights(*model_, model, path.string());
  conform_model();
  if (settings_.sync_batchnorm) sync_batchnorms();  // BatchNorms the strategy rebuilt too
  replace_parameters(*optimizer_, model_->parameters());
  optimizer_->load(optimizer);
  pos_.load(archive);
  ctx_.scaling_time.reset(pos_.scaling_seconds);
  if (scaler_) scaler_->load(archive);
  torch::Tensor rng;
  archive.read("rng_cpu", rng);
  auto generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(rng.to(torch::kCPU));
}

// sync_batchnorm: every BatchNorm of the model reduces its statistics over the ranks.
void Trainer::sync_batchnorms() {
  if (comm_) sync_batchnorms_over(*model_, comm_);
}

// Runs a setup step on every rank; then the ranks tell each other whether it
// went well, so that a failure on one stops all (instead of the others waiting
// for it in the next collective until the timeout).
void Trainer::together(const std::function<void()>& step) {
  std::exception_ptr error;
  try {
    step();
  } catch (...) {
    error = std::current_exception();
  }
  if (comm_) {
    auto flag = torch::tensor(error ? int64_t{0} : int64_t{1}, torch::kInt64);
    try {
      comm_->all_reduce(flag, ReduceOp::Min);
    } catch (...) {
      if (!error) throw;
    }
    if (!error && flag.item<int64_t>() == 0)
      throw std::runtime_error("rank " + std::to_string(rank_) + ": another rank failed while setting up the run " +
                               "(see its error)");
  }
  if (error) std::rethrow_exception(error);
}

void Trainer::log_kernel_magnitudes() {
  if (!log_) return;
  for (auto& b : spatial_) log_->append_matrix(b->path(), "kernel_magnitude", kernel_magnitude(*b));
}

void Trainer::train_epoch() {
  const int64_t epoch = pos_.epochs_done + 1;
  const int64_t batches = train_loader_->batches_per_epoch();
  auto params = model_->parameters();
  // pos_ holds the sums over all ranks; each rank adds its own, rank 0 starting from pos_.
  const bool first = rank_ == 0;
  auto loss_sum = torch::full({}, first ? pos_.loss_sum : 0.0, torch::TensorOptions(device_).dtype(torch::kFloat64));
  auto correct = torch::full({}, first ? static_cast<int64_t>(pos_.correct) : int64_t{0},
                             torch::TensorOptions(device_).dtype(torch::kInt64));
  double seen = first ? pos_.seen : 0.0;
  // The sums over ranks: [loss_sum, correct, seen, stop requests].
  auto reduce = [&](bool stop) {
    auto t = torch::stack({loss_sum, correct.to(torch::kFloat64),
                           torch::full({}, seen, loss_sum.options()),
                           torch::full({}, stop ? 1.0 : 0.0, loss_sum.options())});
    if (comm_) comm_->all_reduce(t, ReduceOp::Sum);
    t = t.cpu();
    return std::array<double, 4>{t[0].item<double>(), t[1].item<double>(), t[2].item<double>(), t[3].item<double>()};
  };
  const int64_t global_batch = settings_.batch_size * world_;
  const int64_t train_size = dataset_->train()->size();
  // On CPU reading the loss back costs nothing; on CUDA it syncs, so check less often.
  const int64_t check_every = device_.is_cpu() ? 1 : 25;
  auto start = Clock::now();
  const double seconds_before = pos_.epoch_seconds;
  int64_t images_this_session = 0;
  train_loader_->start_epoch(pos_.epochs_done);
  for (int64_t skip = 0; skip < pos_.batch; ++skip)  // resumed mid-epoch
    if (!train_loader_->next()) break;
  StepHooks hooks;
  if (comm_) hooks.reduce_gradients = [&] { all_reduce_gradients(params, *comm_, 1.0 / world_); };
  hooks.after_backward = [&] { strategy_->after_backward(ctx_); };
  hooks.after_step = [&] { strategy_->after_step(ctx_); };
  model_->train();
  while (auto batch = train_loader_->next()) {
    auto x = batch->images.to(device_, /*non_blocking=*/true);
    auto y = batch->labels.to(device_, /*non_blocking=*/true);
    set_learning_rate(*optimizer_, schedule_->lr(pos_.step));
    const int64_t n = y.size(0);
    if (comm_) {
      // The summed gradients / ranks = the gradient of the mean loss over the
      // global batch: weight this rank's mean by its share (1 unless the last
      // global batch splits unevenly).
      const int64_t global_n = std::min(global_batch, train_size - pos_.batch * global_batch);
      hooks.loss_weight = static_cast<double>(n * world_) / static_cast<double>(global_n);
    }
    ctx_.step = pos_.step;
    auto out = step_->run(params, x, y, hooks);
    const auto& loss = out.loss;
    const auto& logits = out.logits;
    loss_sum += loss.to(torch::kFloat64) * static_cast<double>(n);
    correct += logits.argmax(1).eq(y).sum();
    seen += static_cast<double>(n);
    images_this_session += n * world_;
    ++pos_.batch;
    ++pos_.step;
    const bool stop_here =
        caught_interrupt() != 0 || (options_.stop_after_steps > 0 && pos_.step >= options_.stop_after_steps);
    bool stop = stop_here;
    if (pos_.batch % check_every == 0 || pos_.batch == batches) {
      // Ranks decide together (all stop at the same step) from the global sums.
      auto [l, c, all_seen, stops] = reduce(stop_here);
      if (comm_) stop = stops > 0;
      if (!std::isfinite(l)) {
        throw DivergedError("loss is " + std::string(std::isnan(l) ? "NaN" : "infinite") + " at epoch " +
                            std::to_string(epoch) + ", step " + std::to_string(pos_.step) +
                            " (try a lower optimizer.lr or grad_clip_norm)");
      }
      double ips = static_cast<double>(images_this_session) / std::max(1e-9, seconds_since(start));
      progress_.step(epoch, epochs_, pos_.batch, batches, l / all_seen, c / all_seen, ips);
    } else if (comm_) {
      stop = false;  // between checks (CUDA) the ranks cannot agree; stop at the next one
    }
    if (stop) {
      stop_requested_ = true;
      break;
    }
  }
  auto [l, c, all_seen, stops] = reduce(false);
  pos_.loss_sum = l;
  pos_.correct = c;
  pos_.seen = all_seen;
  if (!std::isfinite(pos_.loss_sum))
    throw DivergedError("loss is not finite at epoch " + std::to_string(epoch) + " (try a lower optimizer.lr)");
  pos_.epoch_seconds = seconds_before + seconds_since(start);
}

std::map<std::string, double> Trainer::summary() const {
  std::map<std::string, double> s;
  auto get = [&](const char* key) {
    auto it = last_metrics_.find(key);
    return it == last_metrics_.end() ? NAN : it->second;
  };
  s["final_train_acc"] = get("train_acc");
  s["final_val_acc"] = get("val_acc");
  s["final_test_acc"] = get("test_acc");
  s["best_val_acc"] = pos_.best_val_acc < 0 ? NAN : pos_.best_val_acc;
  s["train_seconds"] = pos_.train_seconds;
  s["epochs_completed"] = static_cast<double>(pos_.epochs_done);
  auto [params, fused] = parameter_counts(*model_, blocks_);
  s["parameters"] = static_cast<double>(params);
  s["parameters_fused"] = static_cast<double>(fused);
  return s;
}

// Names the config file in errors about its values (they come from build()
// and attach(), which know the JSON path but not the file).
void Trainer::with_source(const std::function<void()>& step) const {
  try {
    step();
  } catch (const ConfigError& e) {
    if (options_.config_source.empty()) throw;
    throw ConfigError(options_.config_source + ": " + e.what());
  }
}

// Rank 0: takes the run directory's lock, clears what a kill left, and reads
// the checkpoint to resume from (verified: the other ranks receive it from here).
std::string Trainer::prepare_directory(const fs::path& out) {
  created_dir_ = !fs::exists(out);
  lock_ = RunDirLock::take(out);
  for (const char* name : {"run.h5", "checkpoint.pt", "config.json"}) remove_temporaries(out / name);
  const fs::path h5 = out / "run.h5", ckpt = out / "checkpoint.pt", cfg = out / "config.json";
  if (!options_.resume) {
    // Starting over (asked for): a checkpoint of the run replaced must not be
    // resumed later on top of the new run's file.
    remove_quietly(ckpt);
    return {};
  }
  if (!fs::exists(ckpt)) {
    // Starting again would discard finished epochs: that must be asked for.
    // One epoch without a checkpoint is the moment between the first epoch's
    // run.h5 and its checkpoint: that epoch is redone (to the same result).
    const int64_t epochs =
        fs::exists(h5) ? static_cast<int64_t>(read_run_file(h5.string(), kRunMetrics).epochs.size()) : 0;
    if (epochs > 1)
      throw std::runtime_error(out.string() + ": --resume: run.h5 holds " + std::to_string(epochs) +
                               " finished epochs but there is no checkpoint.pt to resume from; run without --resume "
                               "to start the run again");
    if (epochs == 1) progress_.message(out.string() + ": no checkpoint yet; starting again from epoch 1");
    return {};
  }
  if (!fs::exists(cfg))
    throw ConfigError(cfg.string() + ": missing; --resume cannot tell whose checkpoint " + ckpt.string() +
                      " is: restore config.json, or start the run again without --resume");
  Json previous = read_json_file(cfg.string());
  if (!same_run_config(previous, config_))
    throw ConfigError(cfg.string() + ": the run in this directory has a different config; "
                      "resume it with the same config and --set values, or use a new --out");
  identity_ = run_dir_identity(out);
  std::string bytes = read_file(ckpt);
  verify_checkpoint(bytes, ckpt.string());  // also refuses an empty one (empty bytes mean "start afresh")
  return bytes;
}

// "deploy": {"int8": true}: the finished run's fused model quantized, as
// `sgs quantize` does, and recorded under /deploy/int8 (once: a finished run
// resumed again keeps its record). The run directory's lock is still held.
void Trainer::quantize_at_end(const fs::path& out) {
  const DeploySettings deploy = DeploySettings::of(config_);
  if (!deploy.int8) return;
  Int8Options o;
  o.weights = deploy.weights;
  o.activations = deploy.activations;
  o.calibration = deploy.calibration;
  o.percentile = deploy.percentile;
  o.calib_batches = deploy.calib_batches;
  const std::string h5 = (out / "run.h5").string();
  if (read_run_file(h5, kRunDeploy).deploy.count("int8/" + o.key())) return;
  try {
    auto result = quantize_run(load_run_model(out.string()), o, settings_.data_workers);
    RunLog::write_deploy(h5, "int8/" + o.key(), result.record());
    char line[256];
    std::snprintf(line, sizeof line, "int8 (%s): %s acc %.2f %% (fp32 %.2f %%, drop %.2f points); in run.h5 /deploy/int8",
                  o.key().c_str(), result.split.c_str(), 100 * result.int8_acc, 100 * result.fp32_acc,
                  100 * (result.fp32_acc - result.int8_acc));
    progress_.message(line);
  } catch (const NotExportable& e) {
    throw ConfigError("deploy.int8: model '" + config_["model"]["name"].get<std::string>() +
                      "' has no export graph to quantize: " + e.what() + " (the run itself completed)");
  } catch (const std::exception& e) {
    throw std::runtime_error("deploy.int8: the run completed, but its int8 quantization failed: " + error_message(e));
  }
}

// A run killed after its last checkpoint but before run.h5 said so: write
// the summary and the status it lacks.
void Trainer::complete_run_file(const fs::path& h5) {
  if (read_run_file(h5.string(), kRunAttributes).completed()) return;
  log_ = RunLog::resume(h5.string(), pos_.epochs_done, /*mid_epoch=*/false, strategy_->log_tables());
  last_metrics_ = read_run_file(h5.string(), kRunMetrics).last_metrics();
  log_->set_summary(summary());
  log_->set_status(RunStatus::Completed);
  progress_.message(h5.string() + ": the run had finished; summary and status written");
}

void Trainer::check() {
  with_source([&] { build(); });
  with_source([&] { strategy_->attach(ctx_); });
}

RunResult Trainer::run() {
  // Several ranks stop together: a signal is latched from the start (a rank
  // ending at once would leave the others in a collective), and after the
  // start-up the ranks agree whether one was caught, before anything is written.
  if (comm_) latch_interrupts();
  together([&] { with_source([&] { build(); }); });
  if (comm_) {
    auto caught = torch::tensor(caught_interrupt() != 0 ? int64_t{1} : int64_t{0}, torch::kInt64);
    comm_->all_reduce(caught, ReduceOp::Max);
    if (caught.item<int64_t>() != 0) {
      RunResult stopped;
      stopped.status = RunStatus::Interrupted;
      return stopped;
    }
  }
  const fs::path out(options_.out_dir);
  const fs::path h5 = out / "run.h5", ckpt = out / "checkpoint.pt", cfg = out / "config.json";
  try {
    RunResult result = run_in(out, h5, ckpt, cfg);
    if (result.status == RunStatus::Completed && rank_ == 0) quantize_at_end(out);
    return result;
  } catch (...) {
    // A fresh directory that a failed setup left without a run file: remove it
    // (nothing half-written stays behind).
    if (rank_ == 0 && created_dir_ && !log_) {
      std::error_code ec;
      fs::remove_all(out, ec);
    }
    throw;
  }
}

RunResult Trainer::run_in(const fs::path& out, const fs::path& h5, const fs::path& ckpt, const fs::path& cfg) {
  // Rank 0 reads the checkpoint and hands it to every rank, so that resuming
  // needs the output directory on rank 0's machine only.
  // From here a run writes: a signal is latched, and the run stops after its
  // step with a checkpoint (before, it ended the process: nothing to keep).
  latch_interrupts();
  std::string checkpoint;
  together([&] {
    if (rank_ == 0) checkpoint = prepare_directory(out);
  });
  if (comm_) broadcast_bytes(checkpoint, *comm_);
  const bool resumed = !checkpoint.empty();
  together([&] {
    if (resumed) load_checkpoint(checkpoint, ckpt);
  });
  checkpoint.clear();
  if (comm_) broadcast_module(*model_, *comm_);  // every rank starts from rank 0's weights and buffers
  if (resumed && pos_.epochs_done >= epochs_) {  // nothing left to do: report the finished run as it is
    RunResult done;
    done.status = RunStatus::Completed;
    done.epochs_completed = pos_.epochs_done;
    if (rank_ == 0) {
      complete_run_file(h5);
      progress_.message(out.string() + ": already completed");
      done.summary = read_run_file(h5.string(), kRunSummary).summary;
    }
    return done;
  }
  ctx_.epochs_done = pos_.epochs_done;
  ctx_.step = pos_.step;
  together([&] {
    with_source([&] { strategy_->attach(ctx_); });  // the strategy's per-layer config, before anything is written
    if (rank_ != 0) return;   // only rank 0 writes
    std::string device_name = device_.str();
    if (resumed) {
      log_ = RunLog::resume(h5.string(), pos_.epochs_done, /*mid_epoch=*/pos_.batch > 0, strategy_->log_tables());
      progress_.message("resuming " + out.string() + " at epoch " + std::to_string(pos_.epochs_done + 1) +
                        ", step " + std::to_string(pos_.step));
    } else {
      const std::string config_text = config_.dump(2) + "\n";
      write_file_atomically(cfg, config_text);
      log_ = RunLog::create(h5.string(), config_, device_name, threads_, strategy_->log_tables());
      identity_ = {read_run_file(h5.string(), kRunAttributes).run_id, config_digest(config_text)};
    }
  });
  ctx_.log = log_.get();
  const bool sync_bn = settings_.sync_batchnorm;
  try {
    if (log_)
      for (size_t i = 0; i < spatial_.size(); ++i)
        log_->add_layer(spatial_[i]->path(), static_cast<int64_t>(i), spatial_[i]->spec());
    if (!resumed && log_) {
      log_kernel_magnitudes();
      log_->flush();
    }
    progress_.set_images_per_batch(static_cast<double>(settings_.batch_size * world_));
    RunResult result;
    while (pos_.epochs_done < epochs_) {
      const int64_t epoch = pos_.epochs_done + 1;
      ctx_.epochs_done = pos_.epochs_done;
      if (pos_.batch == 0) {  // not again for an epoch resumed mid-way
        strategy_->on_epoch_begin(ctx_);
        conform_model();  // blocks the strategy grew
      }
      train_epoch();
      // Per-rank BatchNorm statistics: rank 0's are the run's (evaluated, saved).
      if (comm_ && !sync_bn) {
        torch::NoGradGuard no_grad;
        for (auto& b : model_->buffers()) {
          auto t = b.detach();
          comm_->broadcast(t, 0);
        }
      }
      if (stop_requested_) {
        // run.h5 first (this epoch's scalings), then the checkpoint, then the
        // status: a kill between any two leaves a resumable pair.
        if (log_) log_->flush();
        if (rank_ == 0) save_checkpoint(ckpt);
        if (log_) log_->set_status(RunStatus::Interrupted);
        progress_.epoch_end("interrupted at epoch " + std::to_string(epoch) + ", step " + std::to_string(pos_.step) +
                            "; checkpoint written, resume with --resume");
        result.status = RunStatus::Interrupted;
        result.epochs_completed = pos_.epochs_done;
        return result;
      }
      end_epoch(epoch, ckpt);
    }
    result.summary = summary();
    if (log_) {
      log_->set_summary(result.summary);
      log_->set_status(RunStatus::Completed);
    }
    result.status = RunStatus::Completed;
    result.epochs_completed = pos_.epochs_done;
    return result;
  } catch (const DivergedError& e) {
    mark(e, RunStatus::Diverged, /*with_summary=*/true);
    throw;
  } catch (const std::exception& e) {
    mark(e, RunStatus::Failed, /*with_summary=*/false);
    throw;
  }
}

// Records why the run stopped, if run.h5 can still be written (a full disk
// may refuse that too: the original error is what the caller sees).
void Trainer::mark(const std::exception& e, RunStatus status, bool with_summary) noexcept {
  if (!log_) return;
  try {
    if (with_summary) log_->set_summary(summary());
    log_->set_status(status, error_message(e));
  } catch (...) {
  }
}

// Evaluates, logs the epoch (committed to run.h5), then checkpoints.
void Trainer::end_epoch(int64_t epoch, const fs::path& ckpt) {
  std::map<std::string, double> m;
  m["train_loss"] = pos_.loss_sum / pos_.seen;
  m["train_acc"] = pos_.correct / pos_.seen;
  m["lr"] = schedule_->lr(std::max<int64_t>(0, pos_.step - 1));
  m["epoch_seconds"] = pos_.epoch_seconds;
  m["scaling_seconds"] = ctx_.scaling_time.seconds();
  if (val_loader_) {
    auto v = evaluate(*model_, *val_loader_, device_, precision_, comm_);
    m["val_loss"] = v.loss;
    m["val_acc"] = v.acc;
    pos_.best_val_acc = std::max(pos_.best_val_acc, v.acc);
  }
  if (test_loader_) {
    auto v = evaluate(*model_, *test_loader_, device_, precision_, comm_);
    m["test_loss"] = v.loss;
    m["test_acc"] = v.acc;
  }
  pos_.train_seconds += pos_.epoch_seconds;
  pos_.epochs_done = epoch;
  ctx_.epochs_done = epoch;
  strategy_->on_epoch_end(ctx_);
  pos_.batch = 0;
  pos_.loss_sum = pos_.correct = pos_.seen = 0;
  pos_.epoch_seconds = 0;
  ctx_.scaling_time.reset();
  last_metrics_ = m;
  if (log_) {
    log_->append_metrics(epoch, m);
    log_kernel_magnitudes();
    log_->flush();
    if (settings_.checkpoint) save_checkpoint(ckpt);
  }
  char line[256];
  std::snprintf(line, sizeof line, "epoch %lld/%lld  train loss %.4f acc %.2f%%", static_cast<long long>(epoch),
                static_cast<long long>(epochs_), m["train_loss"], 100 * m["train_acc"]);
  std::string text = line;
  if (m.count("val_acc")) text += "  val " + std::to_string(100 * m["val_acc"]).substr(0, 5) + "%";
  if (m.count("test_acc")) text += "  test " + std::to_string(100 * m["test_acc"]).substr(0, 5) + "%";
  std::snprintf(line, sizeof line, "  lr %.4g  %.1fs", m["lr"], m["epoch_seconds"]);
  progress_.epoch_end(text + line);
}

}  // namespace

void keep_freed_memory() {
#if defined(__GLIBC__)
  // Large blocks from the heap rather than mmap (freed ones are reused), and
  // the heap's top trimmed only beyond 1 GiB.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

RunResult run_training(const Json& config, const RunOptions& options) {
  Trainer trainer(config, options);
  return trainer.run();
}

struct RunChecker::Datasets {
  std::map<std::string, std::shared_ptr<Dataset>> by_config;  // the dataset slot's JSON -> its dataset
};

RunChecker::RunChecker(DeviceRules rules) : rules_(rules), datasets_(std::make_unique<Datasets>()) {}
RunChecker::~RunChecker() = default;

void RunChecker::check(const Json& config) {
  auto& dataset = datasets_->by_config[config.value("dataset", Json()).dump()];
  if (!dataset) dataset = make_dataset(config);
  Trainer(config, rules_, dataset).check();
}

RunResult run_training_in(const World& world, const Json& config, RunOptions options,
                          std::chrono::milliseconds timeout) {
  std::unique_ptr<Communicator> comm;
  if (world.world_size > 1) comm = connect(world, rank_device(RunSettings::of(config).device, world), timeout);
  options.comm = comm.get();
  options.local_rank = world.local_rank;
  options.local_world_size = world.local_world_size;
  return run_training(config, options);
}

}  // namespace sgs
