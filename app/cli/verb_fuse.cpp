// sgs fuse RUN_DIR --out model.pt [--no-eval]: the plain model of a
// structurally reparameterized run (every block replaced by its fused KxK
// conv), checked against the branched one on the run's test set. With
// --compare OTHER_RUN (e.g. Lemma 1: the masked-branch run against the SGS
// run), also the largest relative differences between the two fused models'
// tensors and between the two runs' train_loss curves.
#include "verb.h"

#include <sgs/config.h>
#include <sgs/run_file.h>
#include <sgs/errors.h>
#include <sgs/io.h>
#include <sgs/fuse.h>

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

namespace {

std::vector<double> train_loss(const std::string& dir) {
  const std::string file = (std::filesystem::path(dir) / "run.h5").string();
  auto run = sgs::read_run_file(file, sgs::kRunMetrics);
  auto it = run.metrics.find("train_loss");
  if (it == run.metrics.end()) throw sgs::DataError(file + ": no /metrics/train_loss");
  return it->second;
}

// max |a - b| / max |b| over the tensors of `a` and their namesakes in `b`;
// returns the worst and its name.
// `kernels`: only the conv weights (names in `conv_weights`), else all but them.
std::pair<double, std::string> worst_relative(const torch::OrderedDict<std::string, torch::Tensor>& a,
                                              const torch::OrderedDict<std::string, torch::Tensor>& b,
                                              const std::set<std::string>& conv_weights, bool kernels) {
  std::pair<double, std::string> worst{0.0, "-"};
  for (const auto& item : a) {
    if ((conv_weights.count(item.key()) > 0) != kernels) continue;
    const auto* other = b.find(item.key());
    if (other == nullptr || other->sizes() != item.value().sizes())
      throw sgs::ConfigError("--compare: '" + item.key() + "' has no counterpart of the same shape in the other run");
    if (!item.value().is_floating_point()) continue;
    auto x = item.value().to(torch::kFloat64), y = other->to(torch::kFloat64);
    const double scale = y.abs().max().item<double>();
    const double d = (x - y).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
    if (d >= worst.first) worst = {d, item.key()};
  }
  return worst;
}

// The comparison's table and summary line, computed in full before anything
// is written (a bad --compare fails before the fused model is written).
std::string compare_runs(const std::string& dir, sgs::Model& fused, const std::string& other_dir,
                         const torch::Device& device) {
  auto other = sgs::load_run_model(other_dir, device);
  if (!other.warning.empty()) std::cerr << "sgs: warning: " << other.warning << "\n";
  auto other_fused = sgs::fuse_model(other);
  auto la = train_loss(dir), lb = train_loss(other_dir);
  double loss = 0;
  std::string text = "epoch\ttrain_loss\ttrain_loss_other\trelative_difference\n";
  char line[512];
  for (size_t e = 0; e < std::min(la.size(), lb.size()); ++e) {
    const double d = std::abs(la[e] - lb[e]) / std::abs(lb[e]);
    loss = std::max(loss, d);
    std::snprintf(line, sizeof line, "%zu\t%.9g\t%.9g\t%.3g\n", e + 1, la[e], lb[e], d);
    text += line;
  }
  std::set<std::string> conv_weights;
  for (const auto& b : sgs::conv_blocks(fused)) conv_weights.insert(b->path() + ".weight");
  auto kernels = worst_relative(fused.named_parameters(), other_fused->named_parameters(), conv_weights, true);
  auto params = worst_relative(fused.named_parameters(), other_fused->named_parameters(), conv_weights, false);
  auto buffers = worst_relative(fused.named_buffers(), other_fused->named_buffers(), conv_weights, false);
  auto g = [&](double v) {
    std::snprintf(line, sizeof line, "%.3g", v);
    return std::string(line);
  };
  return text + "compared with " + other_dir + " (max |a - b| / max |b|): train_loss " + g(loss) + " over " +
         std::to_string(std::min(la.size(), lb.size())) + " epochs" +
         (la.size() == lb.size() ? "" : " (the runs have different epoch counts)") + "; fused conv kernels " +
         g(kernels.first) + " (" + kernels.second + "); other parameters " + g(params.first) + " (" + params.second +
         "); buffers " + g(buffers.first) + " (" + buffers.second + ")\n";
}

int run_fuse(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  std::string dir, out, compare, device_name = "cpu";
  int64_t threads = 0;
  opts.add_options()("run", po::value(&dir)->required(), "run directory (config.json, checkpoint.pt)")(
      "out", po::value(&out)->required(), "where to write the fused model (a torch archive)")(
      "no-eval", "skip evaluating the branched and the fused model")(
      "compare", po::value(&compare), "another run directory: compare fused tensors and train_loss curves (Lemma 1)")(
      "device", po::value(&device_name), "cpu (default) | cuda")(
      "threads", po::value(&threads), "intra-op threads (default: all cores)");
  po::positional_options_description pos;
  pos.add("run", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("fuse", "RUN_DIR --out MODEL.pt [--no-eval] [--compare OTHER_RUN_DIR]", args, opts, pos, vm)) return 0;
  if (device_name != "cpu" && device_name != "cuda")
    throw sgs::ConfigError("--device: expected cpu or cuda, got '" + device_name + "'");
  if (device_name == "cuda" && !torch::cuda::is_available())
    throw sgs::ConfigError("--device: 'cuda' requested but this LibTorch build has no usable CUDA device");
  at::set_num_threads(threads > 0 ? static_cast<int>(threads)
                                  : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  torch::Device device(device_name == "cuda" ? torch::kCUDA : torch::kCPU);

  auto run = sgs::load_run_model(dir, device);
  if (!run.warning.empty()) std::cerr << "sgs: warning: " << run.warning << "\n";
  auto fused = sgs::fuse_model(run);
  int64_t branched_params = 0, fused_params = 0, spatial = 0;
  for (const auto& p : run.model->parameters()) branched_params += p.numel();
  for (const auto& p : fused->parameters()) fused_params += p.numel();
  for (const auto& b : run.made) spatial += b->spec().spatial() ? 1 : 0;
  const std::string comparison = compare.empty() ? std::string() : compare_runs(dir, *fused, compare, device);
  {
    torch::serialize::OutputArchive archive;
    fused->save(archive);
    const std::filesystem::path path(out);
    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) throw sgs::IoError(out + ": cannot create its directory: " + ec.message());
    std::string bytes;
    archive.save_to([&](const void* data, size_t n) {
      bytes.append(static_cast<const char*>(data), n);
      return n;
    });
    sgs::write_file_atomically(path, bytes);
  }
  std::cout << "fused " << spatial << " spatial convs of " << dir << " (strategy "
            << run.config["strategy"]["name"].get<std::string>() << ", model "
            << run.config["model"]["name"].get<std::string>() << "): " << branched_params << " -> " << fused_params
            << " parameters; wrote " << out << "\n";
  std::cout << comparison << std::flush;
  if (vm.count("no-eval")) return 0;
  auto check = sgs::compare_on_dataset(run, *fused, sgs::RunSettings::of(run.config).data_workers);
  char line[256];
  std::printf("split\timages\tbranched_acc\tfused_acc\tbranched_loss\tfused_loss\tmax_abs_logit_diff\tmax_abs_logit\n");
  std::snprintf(line, sizeof line, "%s\t%lld\t%.2f\t%.2f\t%.6f\t%.6f\t%.3g\t%.3g\n", check.split.c_str(),
                static_cast<long long>(check.images), 100 * check.branched_acc, 100 * check.fused_acc,
                check.branched_loss, check.fused_loss, check.max_abs_diff, check.max_abs_logit);
  std::cout << line;
  return 0;
}

}  // namespace

SGS_VERB("fuse", "fuse a structurally reparameterized run into the plain model; compare their accuracies", run_fuse)
