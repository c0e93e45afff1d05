#include "h5_detail.h"

#include <sgs/run_file.h>
#include <sgs/schema.h>

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

RunColumn read_column(const H5::DataSet& ds) {
  RunColumn c;
  for (auto d : dims_of(ds)) c.shape.push_back(static_cast<int64_t>(d));
  c.values = read_all(ds);
  return c;
}

// The datasets directly in `g` (not its groups), but `skip`.
std::map<std::string, RunColumn> read_columns(const H5::Group& g, const std::string& skip) {
  std::map<std::string, RunColumn> out;
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    const std::string name = g.getObjnameByIdx(i);
    if (name == skip || g.childObjType(name) != H5O_TYPE_DATASET) continue;
    out[name] = read_column(g.openDataSet(name));
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
    if (has_link(lg, "kernel_magnitude")) {
      try {
        layer.kernel_magnitude = read_column(lg.openDataSet("kernel_magnitude")).matrices();
      } catch (const DataError& e) {
        throw DataError(layer.name + "/kernel_magnitude: " + e.what());
      }
    }
    layer.columns = read_columns(lg, "kernel_magnitude");
    run.layers.push_back(std::move(layer));
  }
  std::sort(run.layers.begin(), run.layers.end(), [](const RunLayer& a, const RunLayer& b) {
    return a.index != b.index ? a.index < b.index : a.name < b.name;
  });
}

// The attributes of `obj`: numbers into `values`, strings into `text`.
template <class Record>
void read_attributes(const H5::H5Object& obj, Record& out) {
  for (int i = 0; i < obj.getNumAttrs(); ++i) {
    auto a = obj.openAttribute(static_cast<unsigned>(i));
    if (a.getTypeClass() == H5T_STRING) {
      out.text[a.getName()] = string_attr(obj, a.getName());
    } else if (a.getSpace().getSimpleExtentNpoints() == 1) {
      double v = 0;
      a.read(H5::PredType::NATIVE_DOUBLE, &v);
      out.values[a.getName()] = v;
    }
  }
}

// A group holding a record has the attribute "written"; others hold records.
void read_deploy_group(const H5::Group& g, const std::string& path, RunFile& run) {
  if (g.attrExists("written")) {
    DeployRecord record;
    read_attributes(g, record);
    if (has_link(g, "layers")) {
      auto lg = g.openGroup("layers");
      for (hsize_t i = 0; i < lg.getNumObjs(); ++i) {
        DeployLayer layer;
        layer.name = lg.getObjnameByIdx(i);
        auto one = lg.openGroup(layer.name);
        read_attributes(one, layer);
        layer.index = layer.values.count("index") ? static_cast<int64_t>(layer.values["index"]) : 0;
        layer.columns = read_columns(one, "");
        record.layers.push_back(std::move(layer));
      }
      std::sort(record.layers.begin(), record.layers.end(),
                [](const DeployLayer& a, const DeployLayer& b) { return a.index < b.index; });
    }
    run.deploy[path] = std::move(record);
    return;
  }
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    const std::string name = g.getObjnameByIdx(i);
    if (g.childObjType(name) == H5O_TYPE_GROUP)
      read_deploy_group(g.openGroup(name), path.empty() ? name : path + "/" + name, run);
  }
}

}  // namespace

double DeployRecord::value(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? NAN : it->second;
}

std::vector<RunMatrix> RunColumn::matrices() const {
  if (shape.size() != 3) throw DataError("expected 3 dimensions, found " + std::to_string(shape.size()));
  std::vector<RunMatrix> out;
  const auto per = static_cast<size_t>(shape[1] * shape[2]);
  for (int64_t u = 0; u < shape[0]; ++u) {
    RunMatrix m{shape[1], shape[2], {}};
    const auto from = values.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(u) * per);
    m.values.assign(from, from + static_cast<std::ptrdiff_t>(per));
    out.push_back(std::move(m));
  }
  return out;
}

RunFile read_run_file(const std::string& path, unsigned parts) {
  RunFile run;
  run.file = path;
  auto f = h5::open_file<DataError>(path, H5F_ACC_RDONLY, "read the run file");
  try {
    h5::guarded<DataError>(path, "read the run file", [&] {
      const std::string config = string_attr(f, "config");
      if (config.empty()) throw DataError(path + ": not a run file (no config attribute)");
      try {
        run.config = parse_value_text(config, "config");
      } catch (const ConfigError& e) {
        throw DataError(path + ": the config attribute is not valid JSON (" + e.what() + ")");
      }
      run.status_recorded = string_attr(f, "status");
      run.status = parse_run_status(run.status_recorded);
      run.error = string_attr(f, "error");
      run.run_id = string_attr(f, "run_id");
      run.created = string_attr(f, "created");
      if (parts & kRunMetrics) read_metrics(f, run);
      if (parts & kRunSummary) read_summary(f, run);
      if (parts & kRunLayers) {
        read_layers(f, run);
        run.columns = read_columns(f.openGroup("/"), "");
      }
      if ((parts & kRunDeploy) && has_link(f, "deploy")) read_deploy_group(f.openGroup("deploy"), "", run);
    });
  } catch (const DataError& e) {
    const std::string what = e.what();
    if (what.rfind(path, 0) == 0) throw;
    throw DataError(path + ": cannot read the run file: " + what);
  }
  return run;
}

}  // namespace sgs
