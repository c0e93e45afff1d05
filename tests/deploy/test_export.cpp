// sgs export: the fused model of every strategy and model family as ONNX,
// checked by ONNX's checker and run in OpenCV's DNN against LibTorch; bad
// runs and arguments refused in one line with nothing written.
#include <doctest/doctest.h>

#include "support/plugins.h"
#include "support/support.h"

#include <sgs/export_graph.h>
#include <sgs/registry.h>
#include <sgs/fuse.h>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

namespace fs = std::filesystem;
using namespace sgs;

namespace {

// Whether this build's sgs has ONNX and OpenCV's DNN (else the verb says which is missing).
bool export_built(const test::TempDir& dir) {
  const auto r = test::run_sgs("export " + (dir / "none").string() + " --out " + (dir / "x.onnx").string() + " --check",
                               dir.path());
  return r.err.find("this build has no") == std::string::npos;
}

Json export_config(const Json& model, const std::string& strategy) {
  Json c = test::tiny_config(strategy == "dyrep" ? 2 : 1);
  c["dataset"] = {{"name", "synthetic"}, {"size", 16}, {"channels", 3}, {"classes", 4}, {"train_size", 128},
                  {"test_size", 64}};
  c["model"] = model;
  // A gentle step: logits of a few units, the scale the 1e-4 goal is set for
  // (a float32 network's error grows with its logits).
  c["optimizer"]["lr"] = 0.002;
  c["strategy"] = test::test_slot("strategy", strategy);
  if (strategy == "dyrep") c["strategy"]["grow_interval"] = 1;  // one growth after epoch 1
  if (strategy == "mutual_information") c["strategy"]["warmup_epochs"] = 0;
  return c;
}

// Trains, exports with --check; returns sgs export's output.
test::CommandResult train_and_export(const Json& config, const test::TempDir& dir, const std::string& name) {
  REQUIRE(test::train(config, dir / name).status == RunStatus::Completed);
  const fs::path onnx = dir / (name + ".onnx");
  auto r = test::run_sgs("export " + (dir / name).string() + " --out " + onnx.string() + " --check", dir.path());
  INFO(name << ": " << r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("pass (<= 1e-4, >= 99.9 %)") != std::string::npos);
  CHECK(fs::file_size(onnx) > 0);
  return r;
}

void export_each(const std::vector<std::string>& strategies, const std::string& dir_name) {
  test::TempDir dir(dir_name);
  if (!export_built(dir)) SGS_SKIP("sgs was built without libonnx-dev or OpenCV's DNN module");
  // Every model family: VGG, ResNet basic with both stems, ResNet bottleneck.
  const std::vector<Json> models = {{{"name", "vgg11"}, {"width", 0.125}},
                                    {{"name", "resnet18"}, {"width", 0.125}, {"stem", "cifar"}},
                                    {{"name", "resnet18"}, {"width", 0.125}, {"stem", "imagenet"}},
                                    {{"name", "resnet50"}, {"width", 0.0625}, {"stem", "imagenet"}}};
  for (size_t i = 0; i < strategies.size(); ++i)
    for (size_t m : {i % models.size(), (i + 1) % models.size()}) {
      const std::string name = strategies[i] + "_" + std::to_string(m);
      INFO(name);
      train_and_export(export_config(models[m], strategies[i]), dir, name);
    }
}

}  // namespace

TEST_CASE("export: plain and scaling runs round-trip through ONNX into OpenCV's DNN (VGG, ResNet both stems, "
          "bottleneck)") {
  export_each({"none", "mutual_information"}, "export_plain");
}

TEST_CASE("export: every structural strategy's fused model round-trips through ONNX into OpenCV's DNN") {
  // Those sgs itself has (the recipes of docs/extending.md live in the test binary only).
  std::vector<std::string> in_sgs;
  for (const auto& name : test::structural_strategies())
    if (Registry::global().get("strategy", name).origin.find("docs/recipes") == std::string::npos)
      in_sgs.push_back(name);
  CHECK(in_sgs.size() >= 5);  // acb, dbb, repvgg, masked_branches, dyrep
  export_each(in_sgs, "export_structural");
}

TEST_CASE("export: the graph folds BatchNorms into convs and holds only standard operators") {
  ModelSpec spec{3, 4, 16, 16};
  ConvFactory plain;
  for (const auto& [name, extra] : std::vector<std::pair<std::string, Json>>{
           {"vgg11", {{"width", 0.125}}}, {"resnet50", {{"width", 0.0625}, {"stem", "imagenet"}}}}) {
    INFO(name);
    auto model = test::make_model(name, spec, plain, extra);
    model->eval();
    ExportGraph g;
    g.output(model->export_graph(g, g.input()));
    const std::set<std::string> standard = {"Conv", "Relu", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm", "Add"};
    for (const auto& n : g.nodes()) CHECK(standard.count(n.op) == 1);
    CHECK(g.output_name() == "logits");
    CHECK(g.nodes().back().output == "logits");
  }
  // A model that does not write its graph (the recipe tiny_cnn) says so.
  auto tiny = test::make_model("tiny_cnn", spec, plain, {{"width", 0.25}});
  ExportGraph g;
  CHECK_THROWS_WITH_AS(tiny->export_graph(g, g.input()), "it does not write its graph (Model::export_graph)",
                       NotExportable);
}

TEST_CASE("export: a missing, unfinished or corrupt run, an opset out of range or --out under a file is refused "
          "in one line, nothing written") {
  test::TempDir dir("export_errors");
  if (!export_built(dir)) SGS_SKIP("sgs was built without libonnx-dev or OpenCV's DNN module");
  Json config = export_config({{"name", "vgg11"}, {"width", 0.125}}, "none");
  REQUIRE(test::train(config, dir / "done").status == RunStatus::Completed);
  config["epochs"] = 3;
  REQUIRE(test::train(config, dir / "stopped", false, 2).status == RunStatus::Interrupted);
  fs::create_directories(dir / "corrupt");
  fs::copy(dir / "done", dir / "corrupt", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::ofstream(dir / "corrupt" / "run.h5", std::ios::trunc) << "not HDF5";
  std::ofstream(dir / "file") << "x";
  const std::string out = (dir / "m.onnx").string();
  struct Case {
    std::string args;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {(dir / "absent").string() + " --out " + out, 2, (dir / "absent").string() + ": no such run directory"},
      {(dir / "stopped").string() + " --out " + out, 2,
       (dir / "stopped").string() + ": the run is interrupted, not completed: finish it first (sgs run --resume)"},
      {(dir / "corrupt").string() + " --out " + out, 1, (dir / "corrupt" / "run.h5").string()},
      {(dir / "done").string() + " --out " + out + " --opset 18", 2, "--opset: expected 11 to 17, got 18"},
      {(dir / "done").string() + " --out " + out + " --batch 0", 2, "--batch: expected a positive number or dynamic"},
      {(dir / "done").string() + " --out " + (dir / "file" / "m.onnx").string(), 2,
       "--out: " + (dir / "file").string() + " is not a directory"},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    const auto r = test::run_sgs("export " + c.args, dir.path());
    CHECK(r.exit_code == c.exit_code);
    CHECK(r.err.find(c.message) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(out));
  }
}
