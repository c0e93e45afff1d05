#include "h5_detail.h"

#include <sgs/conv.h>
#include <sgs/io.h>
#include <sgs/run_log.h>
#include <sgs/version.h>

#include <H5Cpp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;

namespace sgs {

using h5::guarded;
using h5::has_link;

namespace {

herr_t collect_error(unsigned, const H5E_error2_t* e, void* out) {
  auto& text = *static_cast<std::string*>(out);
  if (e->desc == nullptr) return 0;
  // The innermost entries of a failed write carry the system's errno.
  const char* at = std::strstr(e->desc, "errno = ");
  if (at != nullptr && text.rfind("errno:", 0) != 0) {
    int n = std::atoi(at + 8);
    if (n > 0) text = std::string("errno:") + std::strerror(n);
  } else if (text.empty()) {
    text = e->desc;
  }
  return 0;
}

}  // namespace

std::string h5_error_reason(const H5::Exception& e) {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &text);
  if (text.rfind("errno:", 0) == 0) return text.substr(6);
  if (!text.empty()) return text;
  return e.getDetailMsg();
}

H5::FileAccPropList h5_access_without_lock() {
  H5::FileAccPropList fapl;
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl.getId(), false, true);
#endif
  return fapl;
}

std::string new_run_id() {
  std::random_device device;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", device(), device(), device(), device());
  return buf;
}

namespace {

H5::StrType string_type() {
  H5::StrType t(H5::PredType::C_S1, H5T_VARIABLE);
  t.setCset(H5T_CSET_UTF8);
  return t;
}

void set_attr(H5::H5Object& obj, const std::string& name, const std::string& value) {
  if (obj.attrExists(name)) obj.removeAttr(name);
  auto type = string_type();
  auto attr = obj.createAttribute(name, type, H5::DataSpace(H5S_SCALAR));
  const char* c = value.c_str();
  attr.write(type, &c);
}

void set_attr(H5::H5Object& obj, const std::string& name, double value) {
  if (obj.attrExists(name)) obj.removeAttr(name);
  obj.createAttribute(name, H5::PredType::NATIVE_DOUBLE, H5::DataSpace(H5S_SCALAR))
      .write(H5::PredType::NATIVE_DOUBLE, &value);
}

void set_attr(H5::H5Object& obj, const std::string& name, int64_t value) {
  if (obj.attrExists(name)) obj.removeAttr(name);
  obj.createAttribute(name, H5::PredType::NATIVE_INT64, H5::DataSpace(H5S_SCALAR))
      .write(H5::PredType::NATIVE_INT64, &value);
}

void set_attr(H5::H5Object& obj, const std::string& name, const std::array<int64_t, 2>& value) {
  if (obj.attrExists(name)) obj.removeAttr(name);
  hsize_t dims[1] = {2};
  obj.createAttribute(name, H5::PredType::NATIVE_INT64, H5::DataSpace(1, dims))
      .write(H5::PredType::NATIVE_INT64, value.data());
}


// An extendable dataset whose rows have shape `row` (empty for scalars).
H5::DataSet open_or_create(H5::Group& g, const std::string& name, const H5::PredType& type,
                           const std::vector<hsize_t>& row) {
  if (has_link(g, name)) return g.openDataSet(name);
  std::vector<hsize_t> dims{0}, max{H5S_UNLIMITED}, chunk{64};
  for (auto r : row) {
    dims.push_back(r);
    max.push_back(r);
    chunk.push_back(r);
  }
  H5::DSetCreatPropList props;
  props.setChunk(static_cast<int>(chunk.size()), chunk.data());
  return g.createDataSet(name, type, H5::DataSpace(static_cast<int>(dims.size()), dims.data(), max.data()), props);
}

hsize_t rows(const H5::DataSet& ds) {
  auto space = ds.getSpace();
  std::vector<hsize_t> dims(space.getSimpleExtentNdims());
  space.getSimpleExtentDims(dims.data());
  return dims[0];
}

void resize_rows(H5::DataSet& ds, hsize_t n) {
  auto space = ds.getSpace();
  std::vector<hsize_t> dims(space.getSimpleExtentNdims());
  space.getSimpleExtentDims(dims.data());
  dims[0] = n;
  ds.extend(dims.data());
}

// Appends one row (`count` values of `type` at `data`).
void append_row(H5::DataSet& ds, const H5::PredType& type, const void* data) {
  auto space = ds.getSpace();
  std::vector<hsize_t> dims(space.getSimpleExtentNdims());
  space.getSimpleExtentDims(dims.data());
  hsize_t at = dims[0];
  dims[0] += 1;
  ds.extend(dims.data());
  auto file_space = ds.getSpace();
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = at;
  count[0] = 1;
  file_space.selectHyperslab(H5S_SELECT_SET, count.data(), start.data());
  H5::DataSpace mem(static_cast<int>(count.size()), count.data());
  ds.write(data, type, mem, file_space);
}

const H5::PredType& h5_type(LogColumn::Type type) {
  return type == LogColumn::Type::kInt32 ? H5::PredType::NATIVE_INT32 : H5::PredType::NATIVE_DOUBLE;
}

void check_tables(const std::vector<LogTable>& tables) {
  auto bad = [](const LogTable& t, const std::string& why) {
    throw std::logic_error("run log: table '" + t.name + "': " + why);
  };
  std::vector<std::string> names;
  for (const auto& t : tables) {
    if (std::find(names.begin(), names.end(), t.name) != names.end()) bad(t, "declared twice");
    names.push_back(t.name);
    bool has_epoch = false;
    for (const auto& c : t.columns) {
      if (c.name.empty() || c.name.find('/') != std::string::npos) bad(t, "a column needs a name without '/'");
      if (t.scope == LogTable::Scope::kRun && (c.name == "metrics" || c.name == "layers" || c.name == "summary"))
        bad(t, "column '" + c.name + "' would replace the run file's own group");
      if (t.scope == LogTable::Scope::kLayer && c.name == "kernel_magnitude")
        bad(t, "column 'kernel_magnitude' is the trainer's");
      if (c.name == t.epoch_column)
        has_epoch = c.type == LogColumn::Type::kInt32 && c.row.empty();
    }
    if (!has_epoch) bad(t, "its epoch column '" + t.epoch_column + "' must be one of its columns, a scalar int32");
  }
}

// Drops the rows of `table` in `g` that took effect in epochs to be redone.
void truncate_table(H5::Group& g, const LogTable& table, int64_t epochs_done, bool mid_epoch) {
  if (!has_link(g, table.epoch_column)) return;
  auto se = g.openDataSet(table.epoch_column);
  std::vector<int32_t> epochs(rows(se));
  if (!epochs.empty()) se.read(epochs.data(), H5::PredType::NATIVE_INT32);
  hsize_t keep = 0;
  const bool kept_at = mid_epoch || table.rows == LogTable::Rows::kAtEpochEnd;
  while (keep < epochs.size() && epochs[keep] < epochs_done + (kept_at ? 1 : 0)) ++keep;
  for (const auto& c : table.columns)
    if (has_link(g, c.name)) {
      auto ds = g.openDataSet(c.name);
      if (rows(ds) > keep) resize_rows(ds, keep);
    }
}

}  // namespace

// Changes go to a copy of run.h5 held in memory (HDF5's core driver, no
// backing store); commit() writes its image to run.h5.tmp, syncs it and
// renames it over run.h5 (sgs/io.h), so the file on disk is always a complete
// one and every write error (a full disk) is ours to report, not HDF5's.
struct RunLog::Impl {
  H5::H5File file;  // the copy in memory, while open
  bool open = false;
  std::vector<LogTable> tables;  // the strategy's, declared at create/resume
};

namespace {

H5::FileAccPropList in_memory_access() {
  H5::FileAccPropList fapl = h5_access_without_lock();
  H5Pset_fapl_core(fapl.getId(), 1 << 20, /*backing_store=*/0);
  return fapl;
}

}  // namespace

RunLog::RunLog(std::string path) : path_(std::move(path)), impl_(std::make_unique<Impl>()) {}
RunLog::~RunLog() { discard(); }

void RunLog::discard() noexcept {
  if (!impl_ || !impl_->open) return;
  try {
    impl_->file.close();
  } catch (...) {
  }
  impl_->open = false;
}

H5::H5File& RunLog::working_copy() {
  if (impl_->open) return impl_->file;
  impl_->file = guarded(path_, "read the run file", [&] {
    return H5::H5File(path_, H5F_ACC_RDWR, H5::FileCreatPropList::DEFAULT, in_memory_access());
  });
  impl_->open = true;
  return impl_->file;
}

void RunLog::commit() {
  if (!impl_->open) return;
  try {
    const hid_t id = impl_->file.getId();
    std::string image = guarded(path_, "write the run file", [&] {
      impl_->file.flush(H5F_SCOPE_GLOBAL);
      const ssize_t n = H5Fget_file_image(id, nullptr, 0);
      if (n < 0) throw H5::FileIException("H5Fget_file_image", "cannot take the file's image");
      std::string out(static_cast<size_t>(n), '\0');
      if (H5Fget_file_image(id, out.data(), out.size()) != n)
        throw H5::FileIException("H5Fget_file_image", "cannot take the file's image");
      return out;
    });
    write_file_atomically(path_, image);
  } catch (...) {
    discard();  // the next change starts again from the file on disk
    throw;
  }
}

std::unique_ptr<RunLog> RunLog::create(const std::string& path, const Json& config, const std::string& device,
                                       int64_t threads, std::vector<LogTable> tables) {
  check_tables(tables);
  std::unique_ptr<RunLog> log(new RunLog(path));
  log->impl_->tables = std::move(tables);
  log->impl_->file = guarded(path, "create the run file", [&] {
    return H5::H5File(path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, in_memory_access());
  });
  log->impl_->open = true;
  guarded(path, "create the run file", [&] {
    auto& f = log->impl_->file;
    set_attr(f, "layout_version", static_cast<int64_t>(kLayoutVersion));
    set_attr(f, "sgs_version", std::string(version_string()));
    set_attr(f, "config", config.dump());
    set_attr(f, "status", std::string(to_string(RunStatus::Running)));
    set_attr(f, "error", std::string(""));
    set_attr(f, "run_id", new_run_id());
    set_attr(f, "created", utc_now());
    set_attr(f, "finished", std::string(""));
    set_attr(f, "device", device);
    set_attr(f, "threads", threads);
    f.createGroup("metrics");
    f.createGroup("layers");
    f.createGroup("summary");
  });
  log->commit();
  return log;
}

std::unique_ptr<RunLog> RunLog::resume(const std::string& path, int64_t epochs_done, bool mid_epoch,
                                       std::vector<LogTable> tables) {
  check_tables(tables);
  std::unique_ptr<RunLog> log(new RunLog(path));
  log->impl_->tables = std::move(tables);
  if (!fs::exists(path))
    throw IoError(path + ": missing; the checkpoint beside it cannot be resumed without its run file");
  auto& f = log->working_copy();
  guarded(path, "update the run file to resume", [&] {
    const auto done = static_cast<hsize_t>(epochs_done);
    auto metrics = f.openGroup("metrics");
    for (hsize_t i = 0; i < metrics.getNumObjs(); ++i) {
      auto ds = metrics.openDataSet(metrics.getObjnameByIdx(i));
      if (rows(ds) > done) resize_rows(ds, done);
    }
    auto layers = f.openGroup("layers");
    for (hsize_t i = 0; i < layers.getNumObjs(); ++i) {
      auto layer = layers.openGroup(layers.getObjnameByIdx(i));
      if (has_link(layer, "kernel_magnitude")) {
        auto ds = layer.openDataSet("kernel_magnitude");
        if (rows(ds) > done + 1) resize_rows(ds, done + 1);
      }
      for (const auto& t : log->impl_->tables)
        if (t.scope == LogTable::Scope::kLayer) truncate_table(layer, t, epochs_done, mid_epoch);
    }
    for (const auto& t : log->impl_->tables)
      if (t.scope == LogTable::Scope::kRun) {
        H5::Group root = f.openGroup("/");
        truncate_table(root, t, epochs_done, mid_epoch);
      }
    set_attr(f, "status", std::string(to_string(RunStatus::Running)));
    set_attr(f, "error", std::string(""));
    set_attr(f, "finished", std::string(""));
  });
  log->commit();
  return log;
}

void RunLog::add_layer(const std::string& path, int64_t index, const ConvSpec& spec) {
  auto& f = working_copy();
  guarded(path_, "write the run file", [&] {
    auto layers = f.openGroup("layers");
    if (has_link(layers, path)) return;
    auto g = layers.createGroup(path);
    set_attr(g, "index", index);
    set_attr(g, "kernel", spec.kernel);
    set_attr(g, "in_channels", spec.in_channels);
    set_attr(g, "out_channels", spec.out_channels);
    set_attr(g, "stride", spec.stride);
    set_attr(g, "padding", spec.padding);
    set_attr(g, "dilation", spec.dilation);
  });
}

void RunLog::append_metrics(int64_t epoch, const std::map<std::string, double>& values) {
  auto& f = working_copy();
  guarded(path_, "write the run file", [&] {
    auto g = f.openGroup("metrics");
    auto epochs = open_or_create(g, "epoch", H5::PredType::NATIVE_INT32, {});
    const hsize_t row = rows(epochs);
    auto e = static_cast<int32_t>(epoch);
    append_row(epochs, H5::PredType::NATIVE_INT32, &e);
    for (const auto& [name, value] : values) {
      auto ds = open_or_create(g, name, H5::PredType::NATIVE_DOUBLE, {});
      const double nan = std::nan("");
      while (rows(ds) < row) append_row(ds, H5::PredType::NATIVE_DOUBLE, &nan);  // a metric that starts late
      append_row(ds, H5::PredType::NATIVE_DOUBLE, &value);
    }
  });
}

void RunLog::append_matrix(const std::string& layer, const std::string& name, const torch::Tensor& matrix) {
  auto m = matrix.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  if (m.dim() != 2) throw std::logic_error("run log: " + layer + "/" + name + ": expected a 2-d matrix");
  auto& f = working_copy();
  guarded(path_, "write the run file", [&] {
    auto g = f.openGroup("layers/" + layer);
    auto ds = open_or_create(g, name, H5::PredType::NATIVE_DOUBLE,
                             {static_cast<hsize_t>(m.size(0)), static_cast<hsize_t>(m.size(1))});
    append_row(ds, H5::PredType::NATIVE_DOUBLE, m.data_ptr<double>());
  });
}

void RunLog::append(const std::string& table, const std::string& layer, const std::vector<torch::Tensor>& values) {
  const auto& tables = impl_->tables;
  auto t = std::find_if(tables.begin(), tables.end(), [&](const LogTable& x) { return x.name == table; });
  const std::string where = "run log: table '" + table + "'" + (layer.empty() ? "" : " of " + layer);
  if (t == tables.end()) throw std::logic_error(where + ": not declared (Strategy::log_tables)");
  if (values.size() != t->columns.size())
    throw std::logic_error(where + ": " + std::to_string(values.size()) + " values for " +
                           std::to_string(t->columns.size()) + " columns");
  const bool per_layer = t->scope == LogTable::Scope::kLayer;
  if (per_layer == layer.empty()) throw std::logic_error(where + ": " + (per_layer ? "needs a layer" : "is run-wide"));
  // Every value converted and checked before anything is written: a row goes in whole or not at all.
  std::vector<torch::Tensor> rows_in(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const auto& c = t->columns[i];
    const auto& v = values[i];
    bool fits = v.defined() && v.dim() == static_cast<int64_t>(c.row.size());
    for (size_t d = 0; fits && d < c.row.size(); ++d) fits = c.row[d] == LogColumn::kAnySize || c.row[d] == v.size(d);
    if (!fits) throw std::logic_error(where + ": column '" + c.name + "' got a value of another shape");
    rows_in[i] = v.detach()
                     .to(torch::kCPU, c.type == LogColumn::Type::kInt32 ? torch::kInt32 : torch::kFloat64)
                     .contiguous();
  }
  auto& f = working_copy();
  if (per_layer && !guarded(path_, "read the run file", [&] { return has_link(f.openGroup("layers"), layer); }))
    throw std::logic_error(where + ": no such layer in the run file");
  guarded(path_, "write the run file", [&] {
    H5::Group g = f.openGroup(per_layer ? "layers/" + layer : "/");
    std::vector<H5::DataSet> sets;
    for (size_t i = 0; i < rows_in.size(); ++i) {
      const auto& c = t->columns[i];
      std::vector<hsize_t> row(rows_in[i].sizes().begin(), rows_in[i].sizes().end());
      auto ds = open_or_create(g, c.name, h5_type(c.type), row);
      auto space = ds.getSpace();
      std::vector<hsize_t> dims(space.getSimpleExtentNdims());
      space.getSimpleExtentDims(dims.data());
      if (std::vector<hsize_t>(dims.begin() + 1, dims.end()) != row)
        throw std::logic_error(where + ": column '" + c.name + "' holds rows of another shape");
      sets.push_back(ds);
    }
    for (size_t i = 0; i < rows_in.size(); ++i) append_row(sets[i], h5_type(t->columns[i].type), rows_in[i].data_ptr());
  });
}

void RunLog::write_deploy(const std::string& path, const std::string& key, const DeployRecord& record) {
  if (key.empty() || key.front() == '/' || key.back() == '/')
    throw std::logic_error("run log: deploy record '" + key + "': expected a relative path");
  RunLog log(path);
  auto& f = log.working_copy();
  guarded(path, "write the run file", [&] {
    H5::Group g = has_link(f, "deploy") ? f.openGroup("deploy") : f.createGroup("deploy");
    // Down to the record's parent, creating what is missing; the record itself is replaced.
    std::string rest = key;
    for (auto slash = rest.find('/'); slash != std::string::npos; slash = rest.find('/')) {
      const std::string part = rest.substr(0, slash);
      g = has_link(g, part) ? g.openGroup(part) : g.createGroup(part);
      rest = rest.substr(slash + 1);
    }
    if (has_link(g, rest)) g.unlink(rest);
    H5::Group r = g.createGroup(rest);
    for (const auto& [name, value] : record.values) set_attr(r, name, value);
    for (const auto& [name, value] : record.text) set_attr(r, name, value);
    set_attr(r, "written", utc_now());
    set_attr(r, "sgs_version", std::string(version_string()));
    if (record.layers.empty()) return;
    H5::Group layers = r.createGroup("layers");
    for (const auto& layer : record.layers) {
      H5::Group lg = layers.createGroup(layer.name);
      set_attr(lg, "index", layer.index);
      for (const auto& [name, value] : layer.values) set_attr(lg, name, value);
      for (const auto& [name, value] : layer.text) set_attr(lg, name, value);
      for (const auto& [name, column] : layer.columns) {
        std::vector<hsize_t> dims(column.shape.begin(), column.shape.end());
        lg.createDataSet(name, H5::PredType::NATIVE_DOUBLE, H5::DataSpace(static_cast<int>(dims.size()), dims.data()))
            .write(column.values.data(), H5::PredType::NATIVE_DOUBLE);
      }
    }
  });
  log.commit();
}

void RunLog::set_status(RunStatus status, const std::string& error) {
  auto& f = working_copy();
  guarded(path_, "write the run file", [&] {
    set_attr(f, "status", std::string(to_string(status)));
    set_attr(f, "error", error);
    if (status != RunStatus::Running) set_attr(f, "finished", utc_now());
  });
  commit();
}

void RunLog::set_summary(const std::map<std::string, double>& values) {
  auto& f = working_copy();
  guarded(path_, "write the run file", [&] {
    auto g = f.openGroup("summary");
    for (const auto& [name, value] : values) {
      if (name == "epochs_completed" || name == "parameters" || name == "parameters_fused")
        set_attr(g, name, static_cast<int64_t>(std::llround(value)));
      else
        set_attr(g, name, value);
    }
  });
}

void RunLog::flush() { commit(); }

}  // namespace sgs
