// sgs export RUN_DIR --out model.onnx [--opset 13] [--batch N|dynamic] [--check]:
// the fused plain model of a finished run as an ONNX file (BatchNorms after
// convs folded in; standard operators only), checked by ONNX's own checker
// before it is renamed into place. With --check, the file is run in a second
// runtime, OpenCV's DNN module, on the run's test images and compared with
// the LibTorch fused model (goal: max |logit difference| <= 1e-4, argmax
// agreement >= 99.9 %; a miss exits 1). Builds without libonnx-dev (or
// without OpenCV's DNN module, for --check) say so in one line.
#include "verb.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/export_graph.h>
#include <sgs/fuse.h>
#include <sgs/io.h>
#include <sgs/loader.h>
#include <sgs/run_file.h>
#include <sgs/version.h>

#include <torch/torch.h>

#if SGS_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif
#if SGS_HAVE_OPENCV_DNN
#include <opencv2/dnn.hpp>
#endif

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

// The run as export needs it: finished, with its checkpoint and run file.
sgs::RunFile finished_run(const std::string& dir) {
  const fs::path h5 = fs::path(dir) / "run.h5";
  if (!fs::is_directory(dir)) throw sgs::ConfigError(dir + ": no such run directory");
  if (!fs::exists(h5)) throw sgs::ConfigError(dir + ": no run.h5 (not a run directory?)");
  auto run = sgs::read_run_file(h5.string(), sgs::kRunSummary);
  if (!run.completed())
    throw sgs::ConfigError(dir + ": the run is " + (run.status_recorded.empty() ? "unknown" : run.status_recorded) +
                           ", not completed: finish it first (sgs run --resume)");
  return run;
}

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

#if SGS_HAVE_ONNX

void set_attribute(onnx::NodeProto& node, const std::string& name, const sgs::ExportGraph::Attribute& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  if (const auto* i = std::get_if<int64_t>(&value)) {
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(*i);
  } else if (const auto* f = std::get_if<float>(&value)) {
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(*f);
  } else {
    a->set_type(onnx::AttributeProto::INTS);
    for (auto v : std::get<std::vector<int64_t>>(value)) a->add_ints(v);
  }
}

void set_shape(onnx::ValueInfoProto& info, const std::string& batch, const std::vector<int64_t>& rest) {
  auto* type = info.mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = type->mutable_shape();
  if (batch == "dynamic")
    shape->add_dim()->set_dim_param("batch");
  else
    shape->add_dim()->set_dim_value(std::stoll(batch));
  for (auto d : rest) shape->add_dim()->set_dim_value(d);
}

std::string onnx_bytes(const sgs::ExportGraph& g, const ExportOptions& o, const sgs::RunModel& run,
                       const sgs::RunFile& file) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name("sgs");
  model.set_producer_version(sgs::version_string());
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(o.opset);
  auto meta = [&](const std::string& key, const std::string& value) {
    auto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  };
  const auto info = run.dataset->info();
  meta("sgs_version", sgs::version_string());
  meta("strategy", run.config["strategy"]["name"].get<std::string>());
  meta("model", run.config["model"]["name"].get<std::string>());
  meta("dataset", run.config["dataset"]["name"].get<std::string>());
  meta("run_id", file.run_id);
  meta("config_crc32", crc32_of_file(fs::path(o.dir) / "config.json"));
  auto acc = file.summary.find("final_test_acc");
  meta("test_acc", acc == file.summary.end() ? "nan" : std::to_string(acc->second));
  meta("input", "float32 NCHW, each channel normalised as (pixel / 255 - mean) / std with mean " +
                    list_text(info.mean) + " and std " + list_text(info.std));
  auto* graph = model.mutable_graph();
  graph->set_name(run.config["model"]["name"].get<std::string>());
  set_shape(*graph->add_input(), o.batch, {run.spec.in_channels, run.spec.height, run.spec.width});
  graph->mutable_input(0)->set_name(g.input());
  set_shape(*graph->add_output(), o.batch, {run.spec.num_classes});
  graph->mutable_output(0)->set_name(g.output_name());
  for (const auto& [name, value] : g.initializers()) {
    auto* t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : value.sizes()) t->add_dims(d);
    t->set_raw_data(value.data_ptr<float>(), static_cast<size_t>(value.numel()) * sizeof(float));
  }
  for (const auto& n : g.nodes()) {
    auto* node = graph->add_node();
    node->set_op_type(n.op);
    node->set_name(n.op + "_" + n.output);
    for (const auto& in : n.inputs) node->add_input(in);
    node->add_output(n.output);
    for (const auto& [name, value] : n.attributes) set_attribute(*node, name, value);
  }
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw std::runtime_error("sgs export: ONNX's checker refuses the graph (a bug: report it): " +
                             std::string(e.what()));
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("sgs export: cannot serialise the ONNX model");
  return bytes;
}

#endif

#if SGS_HAVE_OPENCV_DNN
// The ONNX file in OpenCV's DNN against the LibTorch fused model on the
// run's test set (its validation split without one). Returns whether the goals hold.
bool check_in_opencv(const std::string& file, const sgs::RunModel& run, sgs::Model& fused) {
  const auto eval = sgs::evaluation_split(run, /*workers=*/1, "sgs export --check");
  cv::dnn::Net net = cv::dnn::readNetFromONNX(file);
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  sgs::Loader loader(eval.split, eval.loader);
  loader.start_epoch(0);
  torch::NoGradGuard no_grad;
  fused.eval();
  double max_diff = 0, max_logit = 0;
  int64_t agree = 0, images = 0, correct = 0;
  while (auto batch = loader.next()) {
    auto x = batch->images.to(torch::kCPU, torch::kFloat32).contiguous();
    auto expected = fused.forward(x.to(fused.parameters()[0].device())).to(torch::kCPU, torch::kFloat32);
    std::vector<int> dims(x.sizes().begin(), x.sizes().end());
    cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F, x.data_ptr<float>());
    net.setInput(blob);
    cv::Mat out = net.forward();
    auto got = torch::from_blob(out.ptr<float>(), {out.size[0], out.size[1]}, torch::kFloat32).clone();
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
  std::printf("runtime\tsplit\timages\tacc\tmax_abs_logit_diff\tmax_abs_logit\targmax_agreement\tverdict\n");
  std::printf("opencv_dnn %s\t%s\t%lld\t%.2f\t%.3g\t%.3g\t%.2f%%\t%s\n", CV_VERSION, eval.name.c_str(),
              static_cast<long long>(images), 100.0 * static_cast<double>(correct) / std::max<int64_t>(1, images),
              max_diff, max_logit, 100 * agreement,
              ok ? "pass (<= 1e-4, >= 99.9 %)" : "FAIL (goals: <= 1e-4, >= 99.9 %)");
  return ok;
}
#endif

int run_export(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  ExportOptions o;
  opts.add_options()("run", po::value(&o.dir)->required(), "a finished run's directory")(
      "out", po::value(&o.out)->required(), "the ONNX file to write")(
      "opset", po::value(&o.opset), "ONNX opset, 11 to 17 (default 13)")(
      "batch", po::value(&o.batch), "the input's batch size: N, or dynamic (default)")(
      "check", "run the file in OpenCV's DNN on the run's test images and compare with LibTorch")(
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
#if !SGS_HAVE_ONNX
  throw sgs::ConfigError(
      "sgs export: this build has no ONNX library: install libonnx-dev (scripts/bootstrap.sh does) and rebuild");
#else
#if !SGS_HAVE_OPENCV_DNN
  if (o.check)
    throw sgs::ConfigError("sgs export --check: this build has no OpenCV DNN module: install libopencv-dnn-dev "
                           "(scripts/bootstrap.sh does) and rebuild");
#endif
  at::set_num_threads(o.threads > 0 ? static_cast<int>(o.threads)
                                    : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  const sgs::RunFile file = finished_run(o.dir);
  auto run = sgs::load_run_model(o.dir);
  auto fused = sgs::fuse_model(run);
  fused->eval();
  sgs::ExportGraph g;
  try {
    g.output(fused->export_graph(g, g.input()));
  } catch (const sgs::NotExportable& e) {
    throw sgs::ConfigError("sgs export: model '" + run.config["model"]["name"].get<std::string>() +
                           "' cannot be exported: " + e.what());
  }
  sgs::write_file_atomically(o.out, onnx_bytes(g, o, run, file));
  int64_t weights = 0;
  for (const auto& [name, t] : g.initializers()) weights += t.numel();
  std::cout << "wrote " << o.out << ": " << g.nodes().size() << " operators, " << weights << " weights, opset "
            << o.opset << ", batch " << o.batch << " (model " << run.config["model"]["name"].get<std::string>()
            << ", strategy " << run.config["strategy"]["name"].get<std::string>() << ", run " << file.run_id
            << ")\n";
#if SGS_HAVE_OPENCV_DNN
  if (o.check && !check_in_opencv(o.out, run, *fused)) return 1;
#endif
  return 0;
#endif
}

}  // namespace

SGS_VERB("export", "write a finished run's fused model as ONNX; --check runs it in OpenCV's DNN", run_export)
