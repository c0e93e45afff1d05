// sgs export RUN_DIR --out model.onnx [--opset 13] [--batch N|dynamic] [--check]:
// the fused plain model of a finished run as an ONNX file (BatchNorms after
// convs folded in; standard operators only), checked by ONNX's own checker
// before it is renamed into place. With --check, the file is run in a second
// runtime, OpenCV's DNN module, on the run's test images and compared with
// the LibTorch fused model (goal: max |logit difference| <= 1e-4, argmax
// agreement >= 99.9 %; a miss exits 1); the figures go to run.h5 under
// /deploy/export_check, written under the run directory's lock. Builds
// without libonnx-dev (or without OpenCV's DNN module, for --check) say so
// in one line.
#include "verb.h"

#include "deploy/onnx_model.h"
#include "deploy/opencv_net.h"

#include <sgs/errors.h>
#include <sgs/export_graph.h>
#include <sgs/fuse.h>
#include <sgs/io.h>
#include <sgs/loader.h>
#include <sgs/run_dir.h>
#include <sgs/run_file.h>
#include <sgs/run_log.h>
#include <sgs/version.h>

#include <torch/torch.h>

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;

namespace {

struct ExportOptions {
  std::string dir, out, batch = "dynamic";
  int64_t opset = 13, threads = 0;
  bool check = false;
};

std::string crc32_of_file(const fs::path& path) {
  const std::string bytes = sgs::read_file(path);
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32(c, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size()));
  char text[16];
  std::snprintf(text, sizeof text, "%08lx", static_cast<unsigned long>(c));
  return text;
}

std::string list_text(const std::vector<double>& v) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

sgs::deploy::OnnxModelInfo model_info(const ExportOptions& o, const sgs::RunModel& run, const sgs::RunFile& file) {
  sgs::deploy::OnnxModelInfo info;
  info.opset = o.opset;
  info.batch = o.batch;
  info.input_shape = {run.spec.in_channels, run.spec.height, run.spec.width};
  info.classes = run.spec.num_classes;
  info.graph_name = run.config["model"]["name"].get<std::string>();
  const auto data = run.dataset->info();
  auto acc = file.summary.find("final_test_acc");
  info.metadata = {
      {"sgs_version", sgs::version_string()},
      {"strategy", run.config["strategy"]["name"].get<std::string>()},
      {"model", run.config["model"]["name"].get<std::string>()},
      {"dataset", run.config["dataset"]["name"].get<std::string>()},
      {"run_id", file.run_id},
      {"config_crc32", crc32_of_file(fs::path(o.dir) / "config.json")},
      {"test_acc", acc == file.summary.end() ? "nan" : std::to_string(acc->second)},
      {"input", "float32 NCHW, each channel normalised as (pixel / 255 - mean) / std with mean " +
                    list_text(data.mean) + " and std " + list_text(data.std)}};
  return info;
}

// The ONNX model in OpenCV's DNN against the LibTorch fused model on the
// run's test set (its validation split without one), as /deploy/export_check.
sgs::DeployRecord check_in_opencv(const std::string& bytes, const sgs::RunModel& run, sgs::Model& fused) {
  const auto eval = sgs::evaluation_split(run, /*workers=*/1, "sgs export --check");
  auto net = sgs::deploy::OpenCvNet::from_onnx(bytes);
  sgs::Loader loader(eval.split, eval.loader);
  loader.start_epoch(0);
  torch::NoGradGuard no_grad;
  fused.eval();
  double max_diff = 0, max_logit = 0;
  int64_t agree = 0, images = 0, correct = 0;
  while (auto batch = loader.next()) {
    auto x = batch->images.to(torch::kCPU, torch::kFloat32).contiguous();
    auto expected = fused.forward(x.to(fused.parameters()[0].device())).to(torch::kCPU, torch::kFloat32);
    auto got = net.forward(x);
    if (got.sizes() != expected.sizes())
      throw std::runtime_error("sgs export --check: OpenCV's output has another shape than the model's");
    max_diff = std::max(max_diff, (got - expected).abs().max().item<double>());
    max_logit = std::max(max_logit, expected.abs().max().item<double>());
    agree += got.argmax(1).eq(expected.argmax(1)).sum().item<int64_t>();
    correct += got.argmax(1).eq(batch->labels).sum().item<int64_t>();
    images += x.size(0);
  }
  const double agreement = images > 0 ? static_cast<double>(agree) / static_cast<double>(images) : 0.0;
  const bool ok = max_diff <= 1e-4 && agreement >= 0.999;
  sgs::DeployRecord r;
  r.text = {{"runtime", sgs::deploy::opencv_runtime_name()}, {"split", eval.name}};
  r.values = {{"images", static_cast<double>(images)},
              {"acc", static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(1, images))},
              {"max_abs_logit_diff", max_diff},
              {"max_abs_logit", max_logit},
              {"argmax_agreement", agreement},
              {"passed", ok ? 1.0 : 0.0}};
  return r;
}

int run_export(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  ExportOptions o;
  opts.add_options()("run", po::value(&o.dir)->required(), "a finished run's directory")(
      "out", po::value(&o.out)->required(), "the ONNX file to write")(
      "opset", po::value(&o.opset), "ONNX opset, 11 to 17 (default 13)")(
      "batch", po::value(&o.batch), "the input's batch size: N, or dynamic (default)")(
      "check", "run the file in OpenCV's DNN on the run's test images, compare with LibTorch, record in run.h5")(
      "threads", po::value(&o.threads), "intra-op threads (default: all cores)");
  po::positional_options_description pos;
  pos.add("run", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("export", "RUN_DIR --out MODEL.onnx [--opset 13] [--batch N|dynamic] [--check]", args,
                            opts, pos, vm))
    return 0;
  o.check = vm.count("check") > 0;
  if (o.opset < 11 || o.opset > 17) throw sgs::ConfigError("--opset: expected 11 to 17, got " + std::to_string(o.opset));
  if (o.batch != "dynamic") {
    size_t used = 0;
    long long n = 0;
    try {
      n = std::stoll(o.batch, &used);
    } catch (const std::exception&) {
    }
    if (used != o.batch.size() || n < 1)
      throw sgs::ConfigError("--batch: expected a positive number or dynamic, got '" + o.batch + "'");
  }
  const fs::path parent = fs::absolute(o.out).parent_path();
  if (!fs::is_directory(parent))
    throw sgs::ConfigError("--out: " + parent.string() + " is not a directory");
  if (!sgs::deploy::onnx_available()) throw sgs::ConfigError(sgs::deploy::missing_onnx("sgs export"));
  if (o.check && !sgs::deploy::opencv_dnn_available())
    throw sgs::ConfigError(sgs::deploy::missing_opencv_dnn("sgs export --check"));
  at::set_num_threads(o.threads > 0 ? static_cast<int>(o.threads)
                                    : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  sgs::finished_run_file(o.dir);  // refuses what is not a finished run before the lock file is made
  // The writer's lock for --check's record; also keeps a run from starting in the directory meanwhile.
  auto lock = sgs::RunDirLock::take(o.dir);
  const sgs::RunFile file = sgs::finished_run_file(o.dir);
  auto run = sgs::load_run_model(o.dir);
  if (!run.warning.empty()) std::cerr << "sgs: warning: " << run.warning << "\n";
  auto fused = sgs::fuse_model(run);
  fused->eval();
  sgs::ExportGraph g;
  try {
    g.output(fused->export_graph(g, g.input()));
  } catch (const sgs::NotExportable& e) {
    throw sgs::ConfigError("sgs export: model '" + run.config["model"]["name"].get<std::string>() +
                           "' cannot be exported: " + e.what());
  }
  std::string bytes;
  try {
    bytes = sgs::deploy::onnx_model_bytes(g, model_info(o, run, file));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("sgs export: " + std::string(e.what()));
  }
  sgs::write_file_atomically(o.out, bytes);
  int64_t weights = 0;
  for (const auto& [name, t] : g.initializers()) weights += t.numel();
  std::cout << "wrote " << o.out << ": " << g.nodes().size() << " operators, " << weights << " weights, opset "
            << o.opset << ", batch " << o.batch << " (model " << run.config["model"]["name"].get<std::string>()
            << ", strategy " << run.config["strategy"]["name"].get<std::string>() << ", run " << file.run_id
            << ")\n";
  if (!o.check) return 0;
  auto record = check_in_opencv(bytes, run, *fused);
  record.values["opset"] = static_cast<double>(o.opset);
  record.text["file"] = fs::absolute(o.out).string();
  const bool ok = record.value("passed") == 1.0;
  std::printf("runtime\tsplit\timages\tacc\tmax_abs_logit_diff\tmax_abs_logit\targmax_agreement\tverdict\n");
  std::printf("%s\t%s\t%.0f\t%.2f\t%.3g\t%.3g\t%.2f%%\t%s\n", record.text["runtime"].c_str(),
              record.text["split"].c_str(), record.value("images"), 100 * record.value("acc"),
              record.value("max_abs_logit_diff"), record.value("max_abs_logit"),
              100 * record.value("argmax_agreement"), ok ? "pass (<= 1e-4, >= 99.9 %)" : "FAIL (goals: <= 1e-4, >= 99.9 %)");
  sgs::RunLog::write_deploy((fs::path(o.dir) / "run.h5").string(), "export_check", record);
  std::cout << "recorded in " << (fs::path(o.dir) / "run.h5").string() << " (/deploy/export_check)\n";
  return ok ? 0 : 1;
}

}  // namespace

SGS_VERB("export", "write a finished run's fused model as ONNX; --check runs it in OpenCV's DNN", run_export)
