#include "onnx_model.h"

#include <sgs/version.h>

#include <stdexcept>
#include <variant>

#if SGS_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif

namespace sgs::deploy {

bool onnx_available() { return SGS_HAVE_ONNX != 0; }

std::string missing_onnx(const std::string& who) {
  return who + ": this build has no ONNX library: install libonnx-dev (scripts/bootstrap.sh does) and rebuild";
}

#if SGS_HAVE_ONNX

namespace {

void set_attribute(onnx::NodeProto& node, const std::string& name, const ExportGraph::Attribute& value) {
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

}  // namespace

std::string onnx_model_bytes(const ExportGraph& g, const OnnxModelInfo& info) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name("sgs");
  model.set_producer_version(version_string());
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(info.opset);
  for (const auto& [key, value] : info.metadata) {
    auto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }
  auto* graph = model.mutable_graph();
  graph->set_name(info.graph_name);
  set_shape(*graph->add_input(), info.batch, info.input_shape);
  graph->mutable_input(0)->set_name(g.input());
  set_shape(*graph->add_output(), info.batch, {info.classes});
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
    throw std::runtime_error("ONNX's checker refuses the graph (a bug: report it): " + std::string(e.what()));
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("cannot serialise the ONNX model");
  return bytes;
}

#else

std::string onnx_model_bytes(const ExportGraph&, const OnnxModelInfo&) { throw std::runtime_error(missing_onnx("sgs")); }

#endif

}  // namespace sgs::deploy
