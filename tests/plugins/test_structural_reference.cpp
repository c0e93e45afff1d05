// Our acb, dbb, repvgg and dyrep blocks against the authors' public code:
// tests/reference/structural_reference.json holds, for ACNet's ACBlock,
// DiverseBranchBlock's DiverseBranchBlock, RepVGG's RepVGGBlock (its ReLU
// replaced by the identity) and DyRep's own DiverseBranchBlock (grown with
// the branches DyRep gives the geometry) on a few geometries, every
// parameter and BatchNorm buffer (the authors' names), an input, the block's
// eval- and train-mode outputs and the kernel and bias of its deployed conv
// (written once, in float64, by tests/reference/make_structural_reference.py
// from checkouts of their repositories; checked in, so a missing file is a
// failure). The same weights in our blocks must give the same numbers.
#include <doctest/doctest.h>

#include "plugins/strategies/common/dyrep_block.h"
#include "support/plugins.h"

#include <sgs/config.h>
#include <sgs/conv.h>
#include <sgs/registry.h>
#include <sgs/strategy.h>

#include <torch/torch.h>

#include <map>
#include <set>
#include <string>

using namespace sgs;
using sgs::test::rel_diff;

namespace {

const std::string kStructuralReference = std::string(SGS_SOURCE_DIR) + "/tests/reference/structural_reference.json";

torch::Tensor tensor_of(const Json& j) {
  std::vector<int64_t> shape = j.at("shape").get<std::vector<int64_t>>();
  std::vector<double> values = j.at("values").get<std::vector<double>>();
  return torch::tensor(values, torch::kFloat64).view(shape);
}

// The authors' state_dict names -> ours.
const std::map<std::string, std::map<std::string, std::string>>& names() {
  static const std::map<std::string, std::map<std::string, std::string>> n = {
      {"ACBlock",
       {{"square_conv.weight", "square"}, {"ver_conv.weight", "ver"}, {"hor_conv.weight", "hor"},
        {"square_bn.", "square_bn."}, {"ver_bn.", "ver_bn."}, {"hor_bn.", "hor_bn."}}},
      {"DiverseBranchBlock",
       {{"dbb_origin.conv.weight", "origin"}, {"dbb_origin.bn.", "origin_bn."},
        {"dbb_1x1.conv.weight", "one"}, {"dbb_1x1.bn.", "one_bn."},
        {"dbb_1x1_kxk.idconv1.weight", "idconv1"}, {"dbb_1x1_kxk.bn1.bn.", "bn1."},
        {"dbb_1x1_kxk.conv2.weight", "conv2"}, {"dbb_1x1_kxk.bn2.", "bn2."},
        {"dbb_avg.conv.weight", "avg_conv"}, {"dbb_avg.bn.bn.", "avg_bn."}, {"dbb_avg.avgbn.", "avg_out_bn."}}},
      {"RepVGGBlock",
       {{"rbr_dense.conv.weight", "dense"}, {"rbr_dense.bn.", "dense_bn."}, {"rbr_1x1.conv.weight", "one"},
        {"rbr_1x1.bn.", "one_bn."}, {"rbr_identity.", "identity_bn."}}},
      {"DyRepDBB", {{"", ""}}},  // our grown conv keeps DyRep's module names
      {"QARepVGGBlock",
       {{"rbr_dense.conv.weight", "dense"}, {"rbr_dense.bn.", "dense_bn."}, {"rbr_1x1.weight", "one"}, {"bn.", "bn."}}},
      {"QARepVGGBlockV2",
       {{"rbr_dense.conv.weight", "dense"}, {"rbr_dense.bn.", "dense_bn."}, {"rbr_1x1.weight", "one"}, {"bn.", "bn."}}},
      // Our OREPA holds its kernel's parameters in a submodule; OREPA_1x1 and
      // OREPA_LargeConv keep the authors' names.
      {"OREPA",
       {{"weight_orepa_", "kernel.weight_orepa_"}, {"vector", "kernel.vector"}, {"id_tensor", "kernel.id_tensor"},
        {"bn.", "bn."}}},
      {"OREPA_1x1", {{"", ""}}},
      {"OREPA_LargeConv", {{"", ""}}},
  };
  return n;
}

std::string our_name(const std::string& block, const std::string& theirs) {
  for (const auto& [prefix, ours] : names().at(block))
    if (theirs.rfind(prefix, 0) == 0) return ours + theirs.substr(prefix.size());
  return "";
}

const std::map<std::string, std::string> kStrategy = {
    {"ACBlock", "acb"},           {"DiverseBranchBlock", "dbb"}, {"RepVGGBlock", "repvgg"},
    {"DyRepDBB", "dyrep"},        {"QARepVGGBlock", "repvgg"},   {"QARepVGGBlockV2", "repvgg"},
    {"OREPA", "orepa"},           {"OREPA_1x1", "orepa"},        {"OREPA_LargeConv", "orepa"}};

std::shared_ptr<ConvBlock> our_block(const Json& c, Json keys) {
  const std::string strategy = kStrategy.at(c.at("block"));
  keys["name"] = strategy;
  const auto& info = Registry::global().get("strategy", strategy);
  auto s = Registry::global().factory<StrategyKind>(strategy)(
      Options(resolve_object(keys, "strategy", info.schema, {"name"}), "strategy"));
  auto block = s->conv_factory()->make(test::reference_spec(c));
  if (c.at("block") == "DyRepDBB") {  // grown as DyRep grew it: its branches, a KxK conv with bias
    std::string graph = "g";
    for (int b : c.at("branches").get<std::vector<int>>()) graph += b ? '1' : '0';
    graph += c.at("branches")[1] == 1 ? "[p1][p0]" : "[p1]";
    dynamic_cast<dyrep::GrowableConv&>(*block).restore(graph);
  }
  block->to(torch::kFloat64);
  return block;
}

// Copies the case's parameters and buffers into `block` (every one of ours
// must be given).
void load(ConvBlock& block, const Json& c) {
  std::map<std::string, torch::Tensor> ours;
  for (const auto& p : block.named_parameters(true)) ours[p.key()] = p.value();
  for (const auto& b : block.named_buffers(true)) ours[b.key()] = b.value();
  std::set<std::string> given;
  torch::NoGradGuard no_grad;
  for (const auto& [theirs, value] : c.at("params").items()) {
    if (theirs.find("num_batches_tracked") != std::string::npos) continue;
    const std::string name = our_name(c.at("block"), theirs);
    INFO(theirs << " -> " << name);
    REQUIRE(ours.count(name) == 1);
    auto t = tensor_of(value);
    REQUIRE(ours[name].sizes() == t.sizes());
    ours[name].copy_(t);
    given.insert(name);
  }
  for (const auto& [name, t] : ours) {
    if (name.find("num_batches_tracked") != std::string::npos) continue;
    INFO(name << " has no counterpart in the authors' block");
    CHECK(given.count(name) == 1);
  }
}

// The block's deployed conv against the case's: its kernel and bias, and
// that conv2d with them computes the block's eval output.
void check_fused(ConvBlock& block, const Json& c, const torch::Tensor& x) {
  auto [w, b] = block.fused();
  CHECK(rel_diff(w, tensor_of(c.at("fused_weight"))) < 1e-10);
  CHECK(rel_diff(b, tensor_of(c.at("fused_bias"))) < 1e-10);
  const int64_t stride = c.at("stride"), padding = c.at("padding");
  CHECK(rel_diff(torch::conv2d(x, w, b, stride, padding), tensor_of(c.at("eval_output"))) < 1e-9);
}

}  // namespace

TEST_CASE("structural reference: acb, dbb, repvgg and dyrep give the authors' outputs and deployed kernels on their weights") {
  const Json ref = read_json_file(kStructuralReference);
  int checked = 0;
  for (const auto& c : ref.at("cases")) {
    INFO(c.at("name").get<std::string>());
    Json keys = Json::object();
    if (c.at("variant") == "gamma_init_1/3") keys["gamma_init"] = 1.0 / 3;
    const auto x = tensor_of(c.at("input"));
    {
      auto block = our_block(c, keys);
      if (keys.contains("gamma_init")) {  // our gamma_init sets what theirs does
        auto params = block->named_parameters(true);
        CHECK(torch::allclose(params["square_bn.weight"], tensor_of(c.at("params").at("square_bn.weight")), 1e-7, 0));  // (ours drawn in float32)
      }
      load(*block, c);
      block->eval();
      torch::NoGradGuard no_grad;
      CHECK(rel_diff(block->forward(x), tensor_of(c.at("eval_output"))) < 1e-10);
      auto [w, b] = block->fused();
      CHECK(rel_diff(w, tensor_of(c.at("fused_weight"))) < 1e-10);
      CHECK(rel_diff(b, tensor_of(c.at("fused_bias"))) < 1e-10);
    }
    {
      auto block = our_block(c, keys);
      load(*block, c);
      block->train();
      torch::NoGradGuard no_grad;
      CHECK(rel_diff(block->forward(x), tensor_of(c.at("train_output"))) < 1e-10);
    }
    ++checked;
  }
  // 5 ACB (4 geometries, 1 with gamma_init 1/3), 4 DBB, 3 RepVGG cases
  // (RepVGG's own block is 3x3 only; its identity branch in the in = out
  // case) and 5 of DyRep's block (the 4 geometries and padding 0, where it
  // grows 1x1-KxK, 1x1-avg and KxK only).
  CHECK(checked == 17);
}

// tests/reference/rep_reference.json (tests/reference/make_rep_reference.py):
// YOLOv6's QARepVGGBlock and QARepVGGBlockV2 (their ReLU replaced by the
// identity), the same checks as above against our repvgg variants.
TEST_CASE("structural reference: repvgg's qarepvgg and qarepvgg_v2 variants give YOLOv6's QARepVGG outputs and deployed kernels") {
  const Json ref = read_json_file(std::string(SGS_SOURCE_DIR) + "/tests/reference/rep_reference.json");
  int checked = 0;
  for (const auto& c : ref.at("cases")) {
    const std::string block_name = c.at("block");
    if (block_name.rfind("QARepVGG", 0) != 0) continue;
    // YOLOv6's model builders set every BatchNorm to eps 1e-3, momentum 0.03
    // afterwards; the block itself (and ours) keeps PyTorch's defaults.
    if (c.at("variant") != "default") continue;
    INFO(c.at("name").get<std::string>());
    const Json keys{{"variant", block_name == "QARepVGGBlock" ? "qarepvgg" : "qarepvgg_v2"}};
    const auto x = tensor_of(c.at("input"));
    for (bool train : {false, true}) {
      auto block = our_block(c, keys);
      load(*block, c);
      block->train(train);
      torch::NoGradGuard no_grad;
      CHECK(rel_diff(block->forward(x), tensor_of(c.at(train ? "train_output" : "eval_output"))) < 1e-10);
      if (!train) check_fused(*block, c, x);
    }
    ++checked;
  }
  CHECK(checked == 6);  // both blocks on 3 geometries (the identity and the pool where in = out, stride 1)
}

// The same file's OREPA, OREPA_1x1 and OREPA_LargeConv (the authors' blocks.py):
// outputs, the fused kernel, and the gradients of every branch parameter of
// sum(eval_output * G) (their autograd through weight_gen, ours through ours).
TEST_CASE("structural reference: orepa gives OREPA's outputs, fused kernels and branch gradients (3x3, 1x1, the 7x7 stem)") {
  const Json ref = read_json_file(std::string(SGS_SOURCE_DIR) + "/tests/reference/rep_reference.json");
  int checked = 0, gradients = 0;
  for (const auto& c : ref.at("cases")) {
    const std::string block_name = c.at("block");
    if (block_name.rfind("OREPA", 0) != 0) continue;
    INFO(c.at("name").get<std::string>());
    const auto x = tensor_of(c.at("input"));
    {
      // Our constant buffers are built as the authors' are (the frequency prior, 1/K^2, the identity).
      auto fresh = our_block(c, Json::object());
      std::map<std::string, torch::Tensor> buffers;
      for (const auto& b : fresh->named_buffers(true)) buffers[b.key()] = b.value();
      for (const auto& name : c.at("constant_buffers")) {
        const std::string ours = our_name(block_name, name);
        INFO(name);
        REQUIRE(buffers.count(ours) == 1);
        CHECK(rel_diff(buffers[ours], tensor_of(c.at("params").at(name.get<std::string>()))) < 1e-6);  // float32 built
      }
    }
    for (bool train : {false, true}) {
      auto block = our_block(c, Json::object());
      load(*block, c);
      block->train(train);
      if (train) {
        torch::NoGradGuard no_grad;
        CHECK(rel_diff(block->forward(x), tensor_of(c.at("train_output"))) < 1e-10);
        continue;
      }
      auto y = block->forward(x);
      CHECK(rel_diff(y.detach(), tensor_of(c.at("eval_output"))) < 1e-10);
      if (c.contains("eval_grads")) {
        (y * tensor_of(c.at("grad_G"))).sum().backward();
        std::map<std::string, torch::Tensor> ours;
        for (const auto& p : block->named_parameters(true)) ours[p.key()] = p.value();
        for (const auto& [theirs, g] : c.at("eval_grads").items()) {
          INFO(theirs);
          const std::string name = our_name(block_name, theirs);
          REQUIRE(ours.count(name) == 1);
          REQUIRE(ours[name].grad().defined());
          CHECK(rel_diff(ours[name].grad(), tensor_of(g)) < 1e-10);
        }
        ++gradients;
      }
      check_fused(*block, c, x);
    }
    ++checked;
  }
  CHECK(checked == 6);    // OREPA on 3 geometries, OREPA_1x1 on 2, OREPA_LargeConv (the 7x7 stride-2 stem)
  CHECK(gradients == 3);  // one case of each
}
