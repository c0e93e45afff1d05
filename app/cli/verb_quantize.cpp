// sgs quantize RUN_DIR [--calib-batches 32] [--calibration minmax|percentile|mse]
//   [--weights per-channel|per-tensor] [--activations symmetric|asymmetric] [--opencv]:
// post-training int8 of a finished run's fused model, simulated in LibTorch
// (sgs/quantize.h): int8 test accuracy, its drop from fp32, and per layer the
// SQNR of weights and inputs and the weight range of every output channel,
// printed and written to run.h5 under /deploy/int8/<weights>_<activations>_<calibration>
// (the run directory's lock held; a rerun of the same configuration replaces
// its record). --opencv also quantizes the exported ONNX model with OpenCV's
// own int8 (Net::quantize, the same calibration images) and compares.
#include "verb.h"

#include "deploy/onnx_model.h"
#include "deploy/opencv_net.h"

#include <sgs/errors.h>
#include <sgs/fuse.h>
#include <sgs/quantize.h>
#include <sgs/run_dir.h>
#include <sgs/run_log.h>

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

namespace fs = std::filesystem;

namespace {

// OpenCV's int8 model of the same graph, calibrated on the same images; its test accuracy.
double opencv_int8_accuracy(sgs::Int8Inputs& in, const sgs::RunModel& run) {
  sgs::deploy::OnnxModelInfo info;
  info.input_shape = {run.spec.in_channels, run.spec.height, run.spec.width};
  info.classes = run.spec.num_classes;
  auto net = sgs::deploy::OpenCvNet::from_onnx(sgs::deploy::onnx_model_bytes(in.graph, info)).quantized(in.calibration);
  in.restart();
  int64_t correct = 0, images = 0;
  while (auto batch = in.evaluation()) {
    correct += net.forward(batch->first).argmax(1).eq(batch->second).sum().item<int64_t>();
    images += batch->first.size(0);
  }
  return static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(1, images));
}

int run_quantize(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  std::string dir;
  sgs::Int8Options o;
  int64_t threads = 0;
  opts.add_options()("run", po::value(&dir)->required(), "a finished run's directory")(
      "calib-batches", po::value(&o.calib_batches), "calibration batches of training images (default 32)")(
      "calibration", po::value(&o.calibration), "activation ranges: minmax (default) | percentile | mse")(
      "percentile", po::value(&o.percentile), "--calibration percentile: the percentile kept (default 99.99)")(
      "weights", po::value(&o.weights), "weight scales: per-channel (default) | per-tensor")(
      "activations", po::value(&o.activations), "activation scales: symmetric (default) | asymmetric (a zero point)")(
      "opencv", "also run OpenCV's int8 (Net::quantize) on the exported model and compare; needs "
                "--weights per-channel --activations asymmetric --calibration minmax, its only mode")(
      "threads", po::value(&threads), "intra-op threads (default: all cores)");
  po::positional_options_description pos;
  pos.add("run", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("quantize",
                            "RUN_DIR [--calib-batches N] [--calibration minmax|percentile|mse] "
                            "[--weights per-channel|per-tensor] [--activations symmetric|asymmetric] [--opencv]",
                            args, opts, pos, vm))
    return 0;
  o.check("--");
  const bool opencv = vm.count("opencv") > 0;
  if (opencv) {
    if (o.weights != "per-channel" || o.activations != "asymmetric" || o.calibration != "minmax")
      throw sgs::ConfigError("--opencv: OpenCV 4.6 quantizes per-channel weights with asymmetric min/max activations "
                             "only: add --weights per-channel --activations asymmetric --calibration minmax");
    if (!sgs::deploy::onnx_available()) throw sgs::ConfigError(sgs::deploy::missing_onnx("sgs quantize --opencv"));
    if (!sgs::deploy::opencv_dnn_available())
      throw sgs::ConfigError(sgs::deploy::missing_opencv_dnn("sgs quantize --opencv"));
  }
  at::set_num_threads(threads > 0 ? static_cast<int>(threads)
                                  : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  sgs::finished_run_file(dir);
  auto lock = sgs::RunDirLock::take(dir);
  sgs::finished_run_file(dir);
  auto run = sgs::load_run_model(dir);
  if (!run.warning.empty()) std::cerr << "sgs: warning: " << run.warning << "\n";
  sgs::Int8Inputs in;
  try {
    in = sgs::int8_inputs(run, o.calib_batches, /*workers=*/1);
  } catch (const sgs::NotExportable& e) {
    throw sgs::ConfigError("sgs quantize: model '" + run.config["model"]["name"].get<std::string>() +
                           "' has no export graph to quantize: " + e.what());
  }
  in.restart();
  auto result = sgs::quantize_graph(in.graph, in.calibration, in.evaluation, o);
  result.split = in.split;
  auto record = result.record();
  std::printf("layer\top\tweight_sqnr_db\tinput_sqnr_db\tinput_range\tweight_range_min..max\n");
  for (const auto& l : result.layers) {
    const double lo = l.weight_min.min().item<double>(), hi = l.weight_max.max().item<double>();
    const double widest = (l.weight_max - l.weight_min).max().item<double>();
    const double narrowest = (l.weight_max - l.weight_min).min().item<double>();
    std::printf("%s\t%s\t%.1f\t%.1f\t[%.3g, %.3g]\t[%.3g, %.3g] (channel spans %.3g..%.3g)\n", l.name.c_str(),
                l.op.c_str(), l.weight_sqnr_db, l.activation_sqnr_db, l.input_lo, l.input_hi, lo, hi, narrowest,
                widest);
  }
  std::printf("\nint8\tsplit\timages\tcalib_images\tfp32_acc\tint8_acc\tint8_drop\targmax_agreement\tlogit_sqnr_db\n");
  std::printf("%s\t%s\t%lld\t%lld\t%.2f\t%.2f\t%.2f\t%.2f%%\t%.1f\n", o.key().c_str(), result.split.c_str(),
              static_cast<long long>(result.images), static_cast<long long>(result.calib_images),
              100 * result.fp32_acc, 100 * result.int8_acc, 100 * (result.fp32_acc - result.int8_acc),
              100 * result.argmax_agreement, result.logit_sqnr_db);
  if (opencv) {
    const double acc = opencv_int8_accuracy(in, run);
    const double diff = 100 * (acc - result.int8_acc);
    record.values["opencv_int8_acc"] = acc;
    record.text["opencv_runtime"] = sgs::deploy::opencv_runtime_name();
    std::printf("%s int8 (Net::quantize)\t%.2f\tsimulation %.2f\tdifference %+.2f pp\t%s\n",
                sgs::deploy::opencv_runtime_name().c_str(), 100 * acc, 100 * result.int8_acc, diff,
                std::abs(diff) <= 0.5 ? "agree (<= 0.5 pp)" : "DIFFER (> 0.5 pp)");
  }
  const std::string file = (fs::path(dir) / "run.h5").string();
  sgs::RunLog::write_deploy(file, "int8/" + o.key(), record);
  std::cout << "recorded in " << file << " (/deploy/int8/" << o.key() << ")\n";
  return 0;
}

}  // namespace

SGS_VERB("quantize", "post-training int8 of a finished run's fused model (simulated; --opencv: OpenCV's int8 too)",
         run_quantize)
