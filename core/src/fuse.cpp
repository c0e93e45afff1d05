#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/checkpoint_file.h>
#include <sgs/fuse.h>
#include <sgs/io.h>
#include <sgs/loader.h>

#include <torch/torch.h>

#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace sgs {

std::shared_ptr<ConvBlock> RecordingConvFactory::make(const ConvSpec& spec) {
  auto block = inner_->make(spec);
  blocks_.push_back(block);
  norms_after_.push_back(true);
  return block;
}

// conv_bn calls make(), then norm_after(): the answer belongs to the block just made.
bool RecordingConvFactory::norm_after(const ConvSpec& spec) const {
  const bool after = inner_->norm_after(spec);
  if (!norms_after_.empty()) norms_after_.back() = after;
  return after;
}

std::shared_ptr<ConvBlock> FusedConvFactory::make(const ConvSpec& spec) {
  ConvSpec s = spec;
  if (next_ < units_.size()) s.bias = units_[next_].bias;
  ++next_;
  return std::make_shared<PlainConv>(s);
}

bool FusedConvFactory::norm_after(const ConvSpec& spec) const {
  const size_t made = next_ - 1;  // conv_bn asks after make()
  return next_ == 0 || made >= units_.size() ? true : units_[made].norm_after;
}

RunFile finished_run_file(const std::string& dir) {
  const fs::path h5 = fs::path(dir) / "run.h5";
  if (!fs::is_directory(dir)) throw ConfigError(dir + ": no such run directory");
  if (!fs::exists(h5)) throw ConfigError(dir + ": no run.h5 (not a run directory?)");
  auto run = read_run_file(h5.string(), kRunSummary);
  if (!run.completed())
    throw ConfigError(dir + ": the run is " + (run.status_recorded.empty() ? "unknown" : run.status_recorded) +
                      ", not completed: finish it first (sgs run --resume)");
  return run;
}

RunModel load_run_model(const std::string& dir, const torch::Device& device) {
  const fs::path cfg = fs::path(dir) / "config.json", ckpt = fs::path(dir) / "checkpoint.pt";
  if (!fs::exists(cfg)) throw ConfigError(dir + ": no config.json (not a run directory?)");
  if (!fs::exists(ckpt)) throw ConfigError(dir + ": no checkpoint.pt (was the run started with checkpoint: false?)");
  RunModel run;
  run.config = resolve_config(read_json_file(cfg.string()), cfg.string());
  run.dataset = make_dataset(run.config);
  run.spec = model_spec(*run.dataset);
  run.strategy = make_strategy(run.config);
  auto inner = run.strategy->conv_factory();
  RecordingConvFactory recording(inner ? inner : std::make_shared<ConvFactory>());
  run.model = build_model(run.config, run.spec, recording);
  run.made = recording.blocks();
  run.norms_after = recording.norms_after();
  conv_blocks(*run.model);  // sets the blocks' paths
  torch::serialize::InputArchive archive, model, strategy;
  const std::string bytes = read_file(ckpt);
  verify_checkpoint(bytes, ckpt.string());
  try {
    archive.load_from(bytes.data(), bytes.size(), device);
  } catch (const std::exception& e) {
    throw DataError(ckpt.string() + ": cannot load the model from the checkpoint: " + error_message(e));
  }
  run.warning = check_checkpoint_identity(read_identity(archive), run_dir_identity(dir), ckpt.string());
  try {
    archive.read("strategy", strategy);
    run.strategy->load(strategy);  // first: a strategy that grew the graph rebuilds it before its weights load
    archive.read("model", model);
    load_model_weights(*run.model, model, ckpt.string());
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(ckpt.string() + ": cannot load the model from the checkpoint: " + error_message(e));
  }
  run.model->to(device);
  run.model->eval();
  return run;
}

std::shared_ptr<Model> fuse_model(const RunModel& run) {
  if (run.norms_after.size() != run.made.size())
    throw std::runtime_error("fuse: the run's model records " + std::to_string(run.made.size()) + " convs but " +
                             std::to_string(run.norms_after.size()) + " conv + norm units");
  std::vector<FusedConv> units;
  for (size_t i = 0; i < run.made.size(); ++i) units.push_back({run.made[i]->fused_has_bias(), run.norms_after[i]});
  RecordingConvFactory recording(std::make_shared<FusedConvFactory>(units));
  auto fused = build_model(run.config, run.spec, recording);
  const auto& made = recording.blocks();
  if (made.size() != run.made.size())
    throw std::runtime_error("fuse: the plain build made " + std::to_string(made.size()) + " convs, the run's " +
                             std::to_string(run.made.size()));
  torch::NoGradGuard no_grad;
  auto device = run.model->parameters().empty() ? torch::Device(torch::kCPU) : run.model->parameters()[0].device();
  fused->to(device);
  std::vector<std::string> block_paths;
  for (const auto& b : conv_blocks(*fused)) block_paths.push_back(b->path() + ".");
  for (size_t i = 0; i < made.size(); ++i) {
    auto* plain = dynamic_cast<PlainConv*>(made[i].get());
    const auto& source = run.made[i];
    const auto &a = plain->spec(), &b = source->spec();
    if (a.in_channels != b.in_channels || a.out_channels != b.out_channels || a.kernel != b.kernel ||
        a.stride != b.stride || a.padding != b.padding || a.dilation != b.dilation || a.groups != b.groups ||
        plain->path() != source->path())
      throw std::runtime_error("fuse: conv " + std::to_string(i) + " ('" + source->path() +
                               "') differs between the run's model and the plain one");
    auto [w, bias] = source->fused();
    plain->weight.copy_(w);
    if (plain->bias.defined()) plain->bias.copy_(bias);
  }
  auto outside_blocks = [&](const std::string& name) {
    for (const auto& p : block_paths)
      if (name.rfind(p, 0) == 0) return false;
    return true;
  };
  auto copy_by_name = [&](const torch::OrderedDict<std::string, torch::Tensor>& to,
                          const torch::OrderedDict<std::string, torch::Tensor>& from, const char* what) {
    for (const auto& item : to) {
      if (!outside_blocks(item.key())) continue;
      const auto* src = from.find(item.key());
      if (src == nullptr || src->sizes() != item.value().sizes())
        throw std::runtime_error(std::string("fuse: ") + what + " '" + item.key() +
                                 "' has no counterpart of the same shape in the run's model");
      item.value().copy_(*src);
    }
  };
  copy_by_name(fused->named_parameters(), run.model->named_parameters(), "parameter");
  copy_by_name(fused->named_buffers(), run.model->named_buffers(), "buffer");
  fused->eval();
  return fused;
}

EvaluationSplit evaluation_split(const RunModel& run, int64_t workers, const std::string& who) {
  EvaluationSplit out{"test", run.dataset->test(), {}};
  if (!out.split) out = {"val", run.dataset->val(), {}};
  if (!out.split)
    throw DataError(who + ": the run's dataset has neither a test set nor a validation split to evaluate on");
  const RunSettings settings = RunSettings::of(run.config);
  out.loader.batch_size = settings.eval_batch_size;
  out.loader.shuffle = out.loader.augment = false;
  out.loader.workers = workers;
  out.loader.seed = static_cast<uint64_t>(settings.seed);
  return out;
}

FuseCheck compare_on_dataset(const RunModel& run, Model& fused, int64_t workers) {
  FuseCheck check;
  const auto eval = evaluation_split(run, workers, "fuse");
  check.split = eval.name;
  Loader loader(eval.split, eval.loader);
  loader.start_epoch(0);
  torch::NoGradGuard no_grad;
  run.model->eval();
  fused.eval();
  auto device = run.model->parameters()[0].device();
  double correct_b = 0, correct_f = 0, loss_b = 0, loss_f = 0;
  auto sum_ce = torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum);
  while (auto batch = loader.next()) {
    auto x = batch->images.to(device);
    auto y = batch->labels.to(device);
    auto lb = run.model->forward(x), lf = fused.forward(x);
    correct_b += static_cast<double>(lb.argmax(1).eq(y).sum().item<int64_t>());
    correct_f += static_cast<double>(lf.argmax(1).eq(y).sum().item<int64_t>());
    loss_b += torch::nn::functional::cross_entropy(lb, y, sum_ce).item<double>();
    loss_f += torch::nn::functional::cross_entropy(lf, y, sum_ce).item<double>();
    check.max_abs_diff = std::max(check.max_abs_diff, (lb - lf).abs().max().item<double>());
    check.max_abs_logit = std::max(check.max_abs_logit, lb.abs().max().item<double>());
    check.images += y.size(0);
  }
  const double n = static_cast<double>(std::max<int64_t>(1, check.images));
  check.branched_acc = correct_b / n;
  check.fused_acc = correct_f / n;
  check.branched_loss = loss_b / n;
  check.fused_loss = loss_f / n;
  return check;
}

}  // namespace sgs
