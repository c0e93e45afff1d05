#include "h5_detail.h"

#include <sgs/run_file.h>

#include <algorithm>
#include <cmath>

namespace sgs {

using h5::has_link;
using h5::string_attr;

std::map<std::string, double> RunFile::last_metrics() const {
  std::map<std::string, double> out;
  if (epochs.empty()) return out;
  for (const auto& [name, values] : metrics) out[name] = values.back();
  return out;
}

namespace {

std::vector<int64_t> int_attr(const H5::H5Object& obj, const std::string& name) {
  if (!obj.attrExists(name)) return {};
  auto a = obj.openAttribute(name);
  std::vector<int64_t> v(static_cast<size_t>(a.getSpace().getSimpleExtentNpoints()));
  if (!v.empty()) a.read(H5::PredType::NATIVE_INT64, v.data());
  return v;
}

std::vector<hsize_t> dims_of(const H5::DataSet& ds) {
  auto space = ds.getSpace();
  std::vector<hsize_t> d(static_cast<size_t>(space.getSimpleExtentNdims()));
  if (!d.empty()) space.getSimpleExtentDims(d.data());
  return d;
}

std::vector<double> read_all(const H5::DataSet& ds) {
  std::vector<double> v(static_cast<size_t>(ds.getSpace().getSimpleExtentNpoints()));
  if (!v.empty()) ds.read(v.data(), H5::PredType::NATIVE_DOUBLE);
  return v;
}

// A [U, kh, kw] dataset as U matrices.
std::vector<RunMatrix> read_matrices(const H5::Group& g, const std::string& name) {
  if (!has_link(g, name)) return {};
  auto ds = g.openDataSet(name);
  auto d = dims_of(ds);
  if (d.size() != 3) throw DataError(name + ": expected 3 dimensions, found " + std::to_string(d.size()));
  auto v = read_all(ds);
  std::vector<RunMatrix> out;
  const size_t per = static_cast<size_t>(d[1] * d[2]);
  for (hsize_t u = 0; u < d[0]; ++u) {
    RunMatrix m{static_cast<int64_t>(d[1]), static_cast<int64_t>(d[2]), {}};
    m.values.assign(v.begin() + static_cast<long>(u * per), v.begin() + static_cast<long>((u + 1) * per));
    out.push_back(std::move(m));
  }
  return out;
}

void read_metrics(const H5::H5File& f, RunFile& run) {
  if (!has_link(f, "metrics")) return;
  auto g = f.openGroup("metrics");
  if (has_link(g, "epoch"))
    for (double v : read_all(g.openDataSet("epoch"))) run.epochs.push_back(static_cast<int64_t>(std::llround(v)));
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    const std::string name = g.getObjnameByIdx(i);
    if (name == "epoch") continue;
    auto v = read_all(g.openDataSet(name));
    v.resize(run.epochs.size(), NAN);  // a metric that stopped early reads as NaN
    run.metrics[name] = std::move(v);
  }
}

void read_summary(const H5::H5File& f, RunFile& run) {
  if (!has_link(f, "summary")) return;
  auto g = f.openGroup("summary");
  for (int i = 0; i < g.getNumAttrs(); ++i) {
    auto a = g.openAttribute(static_cast<unsigned>(i));
    double v = 0;
    a.read(H5::PredType::NATIVE_DOUBLE, &v);
    run.summary[a.getName()] = v;
  }
}

void read_layers(const H5::H5File& f, RunFile& run) {
  if (!has_link(f, "layers")) return;
  auto g = f.openGroup("layers");
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    RunLayer layer;
    layer.name = g.getObjnameByIdx(i);
    auto lg = g.openGroup(layer.name);
    auto index = int_attr(lg, "index");
    layer.index = index.empty() ? static_cast<int64_t>(i) : index[0];
    auto kernel = int_attr(lg, "kernel");
    if (kernel.size() == 2) layer.kernel = {kernel[0], kernel[1]};
    layer.scaling = read_matrices(lg, "scaling");
    if (has_link(lg, "scaling_epoch"))
      for (double v : read_all(lg.openDataSet("scaling_epoch"))) layer.scaling_epoch.push_back(std::llround(v));
    layer.scaling_epoch.resize(layer.scaling.size(), -1);
    layer.kernel_magnitude = read_matrices(lg, "kernel_magnitude");
    if (has_link(lg, "structure_epoch")) {
      auto epochs = read_all(lg.openDataSet("structure_epoch"));
      auto events = has_link(lg, "structure_event") ? read_all(lg.openDataSet("structure_event")) : std::vector<double>{};
      auto nodes = has_link(lg, "structure_node") ? read_all(lg.openDataSet("structure_node")) : std::vector<double>{};
      auto branches = has_link(lg, "branches") ? read_all(lg.openDataSet("branches")) : std::vector<double>{};
      for (size_t r = 0; r < epochs.size(); ++r) {
        RunLayer::Change c;
        c.epoch = std::llround(epochs[r]);
        if (r < events.size()) c.event = static_cast<int>(std::lround(events[r]));
        if (r < nodes.size()) c.node = static_cast<int>(std::lround(nodes[r]));
        for (size_t b = 0; b < 7 && r * 7 + b < branches.size(); ++b)
          c.branches[b] = static_cast<int>(std::lround(branches[r * 7 + b]));
        layer.structure.push_back(c);
      }
    }
    run.layers.push_back(std::move(layer));
  }
  std::sort(run.layers.begin(), run.layers.end(), [](const RunLayer& a, const RunLayer& b) {
    return a.index != b.index ? a.index < b.index : a.name < b.name;
  });
}

}  // namespace

RunFile read_run_file(const std::string& path, unsigned parts) {
  RunFile run;
  run.file = path;
  auto f = h5::open_file<DataError>(path, H5F_ACC_RDONLY, "read the run file");
  try {
    h5::guarded<DataError>(path, "read the run file", [&] {
      const std::string config = string_attr(f, "config");
      if (config.empty()) throw DataError(path + ": not a run file (no config attribute)");
      try {
        run.config = Json::parse(config);
      } catch (const Json::parse_error&) {
        throw DataError(path + ": the config attribute is not valid JSON");
      }
      run.status_recorded = string_attr(f, "status");
      run.status = parse_run_status(run.status_recorded);
      run.error = string_attr(f, "error");
      run.run_id = string_attr(f, "run_id");
      run.created = string_attr(f, "created");
      if (parts & kRunMetrics) read_metrics(f, run);
      if (parts & kRunSummary) read_summary(f, run);
      if (parts & kRunLayers) read_layers(f, run);
    });
  } catch (const DataError& e) {
    const std::string what = e.what();
    if (what.rfind(path, 0) == 0) throw;
    throw DataError(path + ": cannot read the run file: " + what);
  }
  return run;
}

}  // namespace sgs
