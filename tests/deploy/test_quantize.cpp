// Post-training int8 (sgs/quantize.h, sgs quantize, the "deploy" config
// section): the graph runner equals the model, the int8 grid and ranges are
// as documented, an outlier channel collapses per-tensor weights and
// per-channel ones recover, calibration clips an outlier activation, the
// record in run.h5 replaces itself and leaves the rest alone, and bad input
// is refused in one line.
#include <doctest/doctest.h>

#include "support/plugins.h"
#include "support/support.h"

#include <sgs/config.h>
#include <sgs/conv.h>
#include <sgs/export_graph.h>
#include <sgs/quantize.h>
#include <sgs/run_dir.h>
#include <sgs/run_file.h>
#include <sgs/version.h>

#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace sgs;

namespace {

// Random running statistics and affine parameters, so that folding matters.
void randomize_norms(Model& model) {
  torch::NoGradGuard no_grad;
  for (auto& m : model.modules(/*include_self=*/false))
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get())) {
      bn->running_mean.uniform_(-0.5, 0.5);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.2, 0.2);
    }
}

// Yields `batches` once (labels: class 0).
BatchSource source_of(const std::vector<torch::Tensor>& batches) {
  auto at = std::make_shared<size_t>(0);
  return [batches, at]() -> std::optional<std::pair<torch::Tensor, torch::Tensor>> {
    if (*at >= batches.size()) return std::nullopt;
    const auto& x = batches[(*at)++];
    return std::make_pair(x, torch::zeros({x.size(0)}, torch::kLong));
  };
}

std::vector<torch::Tensor> random_batches(int64_t n, std::vector<int64_t> shape, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(torch::randn(shape));
  return out;
}

// conv 3x3 (3 -> 8, bias) -> ReLU -> global average pool -> flatten -> linear (8 -> 10).
struct TinyGraph {
  std::shared_ptr<PlainConv> conv;
  torch::nn::Linear linear{nullptr};
  ExportGraph graph;
  TinyGraph() {
    torch::manual_seed(3);
    ConvSpec spec;
    spec.in_channels = 3;
    spec.out_channels = 8;
    spec.padding = {1, 1};
    spec.bias = true;
    conv = std::make_shared<PlainConv>(spec);
    linear = torch::nn::Linear(8, 10);
  }
  void build() {
    graph = ExportGraph();
    graph.output(graph.linear(*linear, graph.flatten(graph.global_average_pool(graph.relu(graph.conv(*conv, graph.input()))))));
  }
};

Json quantize_config() {
  Json c = test::tiny_config(1);
  c["dataset"] = {{"name", "synthetic"}, {"size", 16}, {"channels", 3}, {"classes", 4}, {"train_size", 64},
                  {"test_size", 32}};
  c["model"] = {{"name", "vgg11"}, {"width", 0.125}};
  c["optimizer"]["lr"] = 0.002;
  c["batch_size"] = 16;
  return c;
}

}  // namespace

TEST_CASE("int8: the graph runner computes what the model computes (every model family, folded BatchNorms, "
          "ceil-mode pools)") {
  ModelSpec spec{3, 4, 20, 20};  // 20 -> 10 -> 5 -> 3 (ceil) -> 2 (ceil): VGG's pools written with end pads
  ConvFactory plain;
  for (const auto& [name, extra] : std::vector<std::pair<std::string, Json>>{
           {"vgg11", {{"width", 0.125}}},
           {"resnet18", {{"width", 0.125}, {"stem", "cifar"}}},
           {"resnet18", {{"width", 0.125}, {"stem", "imagenet"}}},
           {"resnet50", {{"width", 0.0625}, {"stem", "imagenet"}}}}) {
    INFO(name << " " << extra.dump());
    torch::manual_seed(1);
    auto model = test::make_model(name, spec, plain, extra);
    randomize_norms(*model);
    model->eval();
    ExportGraph g;
    g.output(model->export_graph(g, g.input()));
    GraphRunner runner(g);
    auto x = torch::randn({5, 3, 20, 20});
    torch::NoGradGuard no_grad;
    auto expected = model->forward(x), got = runner.forward(x);
    REQUIRE(got.sizes() == expected.sizes());
    CHECK((got - expected).abs().max().item<double>() <= 1e-5 * std::max(1.0, expected.abs().max().item<double>()));
    CHECK(runner.layers().back()->op == "Gemm");
    CHECK_FALSE(runner.layers().front()->layer.empty());
  }
}

TEST_CASE("int8: weights on the int8 grid, activation ranges and zero points as documented") {
  TinyGraph t;
  t.build();
  const auto calib = random_batches(2, {4, 3, 8, 8}, 5);
  for (const std::string activations : {"symmetric", "asymmetric"}) {
    INFO(activations);
    Int8Options o;
    o.activations = activations;
    auto r = quantize_graph(t.graph, calib, source_of(random_batches(2, {4, 3, 8, 8}, 6)), o);
    REQUIRE(r.layers.size() == 2);
    // The conv's input: the images; min/max calibration spans them exactly.
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& c : calib) lo = std::min(lo, c.min().item<double>()), hi = std::max(hi, c.max().item<double>());
    const auto& l = r.layers[0];
    if (activations == "symmetric") {
      const double m = std::max(-lo, hi);
      CHECK(l.input_hi == doctest::Approx(m).epsilon(1e-6));
      CHECK(l.input_lo == doctest::Approx(-m).epsilon(1e-6));
      CHECK(l.input_scale == doctest::Approx(m / 127).epsilon(1e-6));
      CHECK(l.input_zero_point == 0);
    } else {
      CHECK(l.input_lo == doctest::Approx(lo).epsilon(1e-6));
      CHECK(l.input_hi == doctest::Approx(hi).epsilon(1e-6));
      CHECK(l.input_scale == doctest::Approx((hi - lo) / 255).epsilon(1e-6));
      CHECK(l.input_zero_point == std::llround(-128 - lo / l.input_scale));
      // After ReLU and pooling the Gemm's input is >= 0: its range starts at 0, zero point -128.
      CHECK(r.layers[1].input_lo == 0.0);
      CHECK(r.layers[1].input_zero_point == -128);
    }
    // Per output channel: the weights' own min and max.
    auto w = t.conv->weight.detach().to(torch::kFloat64).flatten(1);
    CHECK(torch::allclose(l.weight_min, std::get<0>(w.min(1))));
    CHECK(torch::allclose(l.weight_max, std::get<0>(w.max(1))));
    CHECK(l.weight_sqnr_db > 30);  // 8 bits: about 6 dB a bit, less the distribution's crest
    CHECK(l.activation_sqnr_db > 25);
    CHECK(r.images == 8);
    CHECK(r.calib_images == 8);
    CHECK(r.argmax_agreement >= 0.75);
  }
}

TEST_CASE("int8: one outlier output channel collapses per-tensor weights and per-channel scales recover") {
  // Class 9's row of the classifier holds one weight of 10000 on feature 7,
  // which is dead (conv channel 7: zero weights, bias -1, then ReLU), and a
  // bias of -10: in fp32 class 9 never wins and the outlier changes nothing,
  // but it sets the classifier's per-tensor scale (10000 / 127), to which every
  // other weight rounds to 0. Per-channel scales leave the other rows alone.
  TinyGraph t;
  {
    torch::NoGradGuard no_grad;
    t.conv->weight[7].zero_();
    t.conv->bias[7] = -1.0;
    t.linear->weight.mul_(10.0);  // logits of a few units
    t.linear->bias.zero_();
    t.linear->weight[9].zero_();
    t.linear->weight[9][7] = 10000.0;
    t.linear->bias[9] = -10.0;
  }
  t.build();
  const auto calib = random_batches(4, {16, 3, 8, 8}, 7);
  const auto eval = random_batches(8, {16, 3, 8, 8}, 8);
  Int8Options per_tensor, per_channel;
  per_tensor.weights = "per-tensor";
  auto a = quantize_graph(t.graph, calib, source_of(eval), per_tensor);
  auto b = quantize_graph(t.graph, calib, source_of(eval), per_channel);
  CHECK(a.logit_sqnr_db < 10);  // the logits are the biases: the other rows' weights all round to 0
  CHECK(b.logit_sqnr_db > 40);
  CHECK(b.argmax_agreement > 0.95);
  CHECK(a.layers[1].weight_sqnr_db < b.layers[1].weight_sqnr_db);
  // The outlier shows in the per-channel weight range: row 9 reaches 10000, the others stay under 10.
  CHECK(b.layers[1].weight_max[9].item<double>() == doctest::Approx(10000.0));
  CHECK(b.layers[1].weight_max.slice(0, 0, 9).max().item<double>() < 10.0);
}

TEST_CASE("int8: percentile and mse calibration clip an outlier that min/max keeps") {
  TinyGraph t;
  t.build();
  for (const std::string activations : {"symmetric", "asymmetric"}) {
    INFO(activations);
    // One pixel of 1000 among 6144: the 99.9th percentile leaves it out.
    auto calib = random_batches(2, {16, 3, 8, 8}, 9);
    calib[0][0][0][0][0] = 1000.0;
    // The same outlier among 393216 values: keeping it whole costs every other
    // value more rounding noise than clipping it part-way costs that one; mse
    // balances the two (among 6144 it keeps the whole range).
    auto many = random_batches(2, {64, 3, 32, 32}, 11);
    many[0][0][0][0][0] = 1000.0;
    auto input_hi = [&](const std::vector<torch::Tensor>& data, const std::string& calibration) {
      Int8Options o;
      o.activations = activations;
      o.calibration = calibration;
      o.percentile = 99.9;
      return quantize_graph(t.graph, data, source_of(random_batches(1, {16, 3, 8, 8}, 10)), o).layers[0].input_hi;
    };
    CHECK(input_hi(calib, "minmax") == doctest::Approx(1000.0));
    CHECK(input_hi(calib, "percentile") < 10.0);
    const double mse = input_hi(many, "mse");
    CHECK(input_hi(calib, "mse") == doctest::Approx(1000.0).epsilon(0.05));  // among 6144: kept
    CHECK(mse < 750.0);
    CHECK(mse > 10.0);
  }
}

TEST_CASE("sgs quantize: the record goes under /deploy/int8/<configuration>, a rerun replaces it and the rest of "
          "run.h5 stays, report and plot read it, export --check records its figures") {
  test::TempDir dir("quantize_cli");
  const fs::path run = dir / "run";
  REQUIRE(test::train(quantize_config(), run).status == RunStatus::Completed);
  const std::string h5 = (run / "run.h5").string();
  const auto before = read_run_file(h5);
  auto r = test::run_sgs("quantize " + run.string() + " --calib-batches 2 --threads 1", dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("per-channel_symmetric_minmax\ttest\t32\t") != std::string::npos);
  auto after = read_run_file(h5);
  REQUIRE(after.deploy.count("int8/per-channel_symmetric_minmax") == 1);
  const auto& q = after.deploy.at("int8/per-channel_symmetric_minmax");
  CHECK(q.value("images") == 32);
  CHECK(q.value("calib_images") == 32);  // 2 batches of 16
  CHECK(q.value("fp32_acc") == doctest::Approx(before.summary.at("final_test_acc")));
  CHECK(q.value("int8_drop") == doctest::Approx(q.value("fp32_acc") - q.value("int8_acc")));
  CHECK(q.text.at("split") == "test");
  CHECK(q.layers.size() == 9);  // VGG-11: 8 convs and the classifier
  CHECK(q.layers.front().name == "features.0");
  CHECK(q.layers.back().name == "classifier");
  CHECK(q.layers.front().columns.at("weight_min").shape == std::vector<int64_t>{8});  // width 1/8: 8 channels
  // Everything else as it was.
  CHECK(after.config == before.config);
  CHECK(after.run_id == before.run_id);
  CHECK(after.epochs == before.epochs);
  CHECK(after.metrics.size() == before.metrics.size());
  CHECK(after.summary.size() == before.summary.size());
  for (const auto& [key, value] : before.summary) {
    INFO(key);
    CHECK((std::isnan(value) ? std::isnan(after.summary.at(key)) : after.summary.at(key) == value));
  }
  CHECK(after.status_recorded == before.status_recorded);
  REQUIRE(after.layers.size() == before.layers.size());
  for (size_t i = 0; i < after.layers.size(); ++i) {
    CHECK(after.layers[i].name == before.layers[i].name);
    CHECK(after.layers[i].kernel_magnitude.size() == before.layers[i].kernel_magnitude.size());
  }
  // Another configuration is another record; the same one again replaces its own.
  REQUIRE(test::run_sgs("quantize " + run.string() + " --calib-batches 1 --weights per-tensor --calibration mse "
                        "--threads 1", dir.path()).exit_code == 0);
  REQUIRE(test::run_sgs("quantize " + run.string() + " --calib-batches 1 --threads 1", dir.path()).exit_code == 0);
  after = read_run_file(h5);
  CHECK(after.deploy.size() == 2);
  CHECK(after.deploy.at("int8/per-channel_symmetric_minmax").value("calib_images") == 16);
  CHECK(after.deploy.at("int8/per-tensor_symmetric_mse").text.at("calibration") == "mse");
  CHECK(test::read_string_attr(h5, "/", "status") == "completed");
  // sgs report's int8 columns (every configuration recorded, or those asked for).
  auto csv = test::run_sgs("report " + run.string() + " --format csv", dir.path());
  REQUIRE(csv.exit_code == 0);
  CHECK(csv.out.find("int8_test_acc.per-channel_symmetric_minmax,int8_drop.per-channel_symmetric_minmax") !=
        std::string::npos);
  CHECK(csv.out.find("int8_test_acc.per-tensor_symmetric_mse") != std::string::npos);
  auto md = test::run_sgs("report " + run.string() + " --int8 per-tensor_symmetric_mse", dir.path());
  CHECK(md.out.find("int8 per-tensor_symmetric_mse (%)") != std::string::npos);
  CHECK(md.out.find("per-channel") == std::string::npos);
#if SGS_WITH_OPENCV
  auto plot = test::run_sgs("plot " + run.string() + " --out " + (dir / "figures").string(), dir.path());
  INFO(plot.out << plot.err);
  CHECK(plot.exit_code == 0);
  for (const char* f : {"int8_sqnr.png", "int8_sqnr.svg", "int8_sqnr.csv", "int8_weight_range.png",
                        "int8_weight_range.csv", "fp32_vs_int8.png", "fp32_vs_int8.svg", "fp32_vs_int8.csv"})
    CHECK(fs::exists(dir / "figures" / f));
  CHECK(test::read_text(dir / "figures" / "int8_weight_range.csv").find("run,configuration,index,layer,channel") == 0);
#endif
  // export --check: its figures under /deploy/export_check (where the build has ONNX and OpenCV's DNN).
  auto e = test::run_sgs("export " + run.string() + " --out " + (dir / "m.onnx").string() + " --check --threads 1",
                         dir.path());
  if (e.err.find("this build has no") == std::string::npos) {
    INFO(e.out << e.err);
    CHECK(e.exit_code == 0);
    after = read_run_file(h5);
    REQUIRE(after.deploy.count("export_check") == 1);
    const auto& c = after.deploy.at("export_check");
    CHECK(c.value("passed") == 1.0);
    CHECK(c.value("images") == 32);
    CHECK(c.value("max_abs_logit_diff") <= 1e-4);
    CHECK(c.text.at("runtime").find("opencv_dnn") == 0);
    CHECK(after.deploy.size() == 3);
    // OpenCV's own int8 beside the simulation of its configuration.
    auto o = test::run_sgs("quantize " + run.string() + " --calib-batches 2 --weights per-channel --activations "
                           "asymmetric --calibration minmax --opencv --threads 1", dir.path());
    INFO(o.out << o.err);
    CHECK(o.exit_code == 0);
    CHECK(o.out.find("int8 (Net::quantize)") != std::string::npos);
    const double acc = read_run_file(h5).deploy.at("int8/per-channel_asymmetric_minmax").value("opencv_int8_acc");
    CHECK(acc >= 0.0);
    CHECK(acc <= 1.0);
  }
}

TEST_CASE("sgs quantize and the deploy section refuse bad input in one line and write nothing") {
  test::TempDir dir("quantize_errors");
  Json config = quantize_config();
  REQUIRE(test::train(config, dir / "done").status == RunStatus::Completed);
  config["epochs"] = 3;
  REQUIRE(test::train(config, dir / "stopped", false, 2).status == RunStatus::Interrupted);
  fs::create_directories(dir / "corrupt");
  fs::copy(dir / "done", dir / "corrupt", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::ofstream(dir / "corrupt" / "run.h5", std::ios::trunc) << "not HDF5";
  const std::string done = (dir / "done").string();
  const std::string h5 = done + "/run.h5";
  const std::string bytes = test::read_text(h5);
  struct Case {
    std::string args;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {(dir / "absent").string(), 2, (dir / "absent").string() + ": no such run directory"},
      {(dir / "stopped").string(), 2,
       (dir / "stopped").string() + ": the run is interrupted, not completed: finish it first (sgs run --resume)"},
      {(dir / "corrupt").string(), 1, (dir / "corrupt" / "run.h5").string()},
      {done + " --weights per-row", 2, "--weights: expected one of per-channel, per-tensor, got 'per-row'"},
      {done + " --calibration entropy", 2, "--calibration: expected one of minmax, percentile, mse, got 'entropy'"},
      {done + " --activations signed", 2, "--activations: expected one of symmetric, asymmetric, got 'signed'"},
      {done + " --calib-batches 0", 2, "--calib_batches: expected >= 1, got 0"},
      {done + " --calibration percentile --percentile 40", 2, "--percentile: expected a number in (50, 100]"},
      {done + " --opencv", 2, "--opencv: OpenCV 4.6 quantizes per-channel weights with asymmetric min/max"},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    const auto r = test::run_sgs("quantize " + c.args, dir.path());
    CHECK(r.exit_code == c.exit_code);
    CHECK(r.err.find(c.message) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  CHECK(test::read_text(h5) == bytes);
  CHECK_FALSE(fs::exists(dir / "absent"));
  // A run directory another process holds (a run training there) is refused, naming it.
  {
    auto lock = RunDirLock::take(dir / "done");
    const int pid = test::spawn_sgs({"quantize", done, "--threads", "1"});
    CHECK(test::wait_child(pid) == 1);
  }
  CHECK(test::read_text(h5) == bytes);
  // The deploy section: unknown keys and a run without checkpoints refused before anything is written.
  test::write_json(dir / "c.json", quantize_config());
  for (const auto& [set, message] : std::vector<std::pair<std::string, std::string>>{
           {"deploy.int9=true", "deploy.int9: unknown key; did you mean 'int8'?"},
           {"deploy.weights=per-row", "deploy.weights"},
           {"deploy=true", "deploy: a section of keys: set one of them"},
           {"checkpoint=false --set deploy.int8=true", "deploy.int8: needs checkpoint: true"}}) {
    INFO(set);
    const auto r = test::run_sgs("run " + (dir / "c.json").string() + " --out " + (dir / "x").string() + " --set " + set,
                                 dir.path());
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(message) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(dir / "x"));
  }
}

TEST_CASE("deploy.int8: a run quantizes itself when training completes and, resumed again, keeps its record") {
  test::TempDir dir("quantize_deploy_key");
  Json config = quantize_config();
  config["strategy"] = test::test_slot("strategy", "dbb");
  config["deploy"] = {{"int8", true}, {"calib_batches", 1}, {"calibration", "percentile"}};
  REQUIRE(test::train(config, dir / "run").status == RunStatus::Completed);
  const std::string h5 = (dir / "run" / "run.h5").string();
  auto run = read_run_file(h5);
  REQUIRE(run.deploy.count("int8/per-channel_symmetric_percentile") == 1);
  const auto& q = run.deploy.at("int8/per-channel_symmetric_percentile");
  CHECK(q.value("calib_images") == 16);
  CHECK(q.value("percentile") == doctest::Approx(99.99));
  CHECK(q.value("fp32_acc") == doctest::Approx(run.summary.at("final_test_acc")));
  const std::string written = q.text.at("written");
  // The deploy keys do not change what the run computes: sgs report groups it with a run without them.
  CHECK(run_specific_keys(run.config).count("deploy.int8") == 1);
  REQUIRE(test::train(config, dir / "run", /*resume=*/true).status == RunStatus::Completed);
  CHECK(read_run_file(h5).deploy.at("int8/per-channel_symmetric_percentile").text.at("written") == written);
}
