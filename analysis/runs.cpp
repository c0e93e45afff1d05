#include "runs.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/registry.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace fs = std::filesystem;

namespace sgs::analysis {

bool RunData::has_metric(const std::string& name) const {
  auto it = metrics.find(name);
  if (it == metrics.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [](double v) { return std::isfinite(v); });
}

double RunData::final_metric(const std::string& name) const {
  auto it = metrics.find(name);
  if (it == metrics.end()) return NAN;
  for (auto v = it->second.rbegin(); v != it->second.rend(); ++v)
    if (std::isfinite(*v)) return *v;
  return NAN;
}

double RunData::max_metric(const std::string& name) const {
  auto it = metrics.find(name);
  double best = NAN;
  if (it == metrics.end()) return best;
  for (double v : it->second)
    if (std::isfinite(v) && !(v <= best)) best = v;
  return best;
}

double RunData::summary_value(const std::string& name) const {
  auto it = summary.find(name);
  return it == summary.end() ? NAN : it->second;
}

double RunData::train_seconds() const {
  const double s = summary_value("train_seconds");
  if (std::isfinite(s)) return s;
  double sum = 0;
  auto it = metrics.find("epoch_seconds");
  if (it != metrics.end())
    for (double v : it->second)
      if (std::isfinite(v)) sum += v;
  return sum;
}

std::string RunData::strategy() const {
  if (config.contains("strategy") && config["strategy"].is_object() && config["strategy"].contains("name") &&
      config["strategy"]["name"].is_string())
    return config["strategy"]["name"].get<std::string>();
  return "none";
}

bool RunData::has_scalings() const {
  return std::any_of(layers.begin(), layers.end(), [](const LayerData& l) { return l.columns.count("scaling") > 0; });
}

namespace {
const RunColumn* column(const LayerData& layer, const std::string& name) {
  auto it = layer.columns.find(name);
  return it == layer.columns.end() ? nullptr : &it->second;
}
int small_int(const RunColumn* c, int64_t r) {
  return c != nullptr && r < c->rows() ? static_cast<int>(std::lround(c->value(r))) : 0;
}
}  // namespace

LayerScalings layer_scalings(const LayerData& layer) {
  LayerScalings out;
  const RunColumn* g = column(layer, "scaling");
  if (g == nullptr) return out;
  try {
    out.scaling = g->matrices();
  } catch (const DataError& e) {
    throw DataError(layer.name + "/scaling: " + e.what());
  }
  const RunColumn* epoch = column(layer, "scaling_epoch");
  for (int64_t r = 0; r < static_cast<int64_t>(out.scaling.size()); ++r)
    out.epoch.push_back(epoch != nullptr && r < epoch->rows() ? std::llround(epoch->value(r)) : -1);
  return out;
}

std::vector<StructureChange> structure_changes(const LayerData& layer) {
  std::vector<StructureChange> out;
  const RunColumn* epochs = column(layer, "structure_epoch");
  if (epochs == nullptr) return out;
  const RunColumn* events = column(layer, "structure_event");
  const RunColumn* nodes = column(layer, "structure_node");
  const RunColumn* branches = column(layer, "branches");
  for (int64_t r = 0; r < epochs->rows(); ++r) {
    StructureChange c;
    c.epoch = std::llround(epochs->value(r));
    c.event = small_int(events, r);
    c.node = small_int(nodes, r);
    for (size_t b = 0; b < c.branches.size(); ++b) {
      const size_t at = static_cast<size_t>(r) * c.branches.size() + b;
      if (branches != nullptr && at < branches->values.size()) c.branches[b] = static_cast<int>(std::lround(branches->values[at]));
    }
    out.push_back(c);
  }
  return out;
}

RunData read_run(const std::string& file) {
  RunData run;
  static_cast<RunFile&>(run) = read_run_file(file);
  // A run recorded by an earlier build lacks the keys added to the schemas
  // since; resolved again, it has them at their defaults, so that it groups
  // with a later run of the same settings. A config this build refuses (a
  // plugin since removed) is kept as recorded.
  try {
    run.config = resolve_config(run.config, file);
  } catch (const ConfigError&) {
  }
  return run;
}

FoundRuns find_runs(const std::vector<std::string>& inputs) {
  if (inputs.empty()) throw ConfigError("no run file or directory given");
  std::vector<fs::path> files;
  for (const auto& input : inputs) {
    const fs::path p(input);
    std::error_code ec;
    std::vector<fs::path> here;
    if (fs::is_regular_file(p, ec)) {
      here.push_back(p);
    } else if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->path().filename() == "run.h5" && it->is_regular_file(ec)) here.push_back(it->path());
    } else {
      throw ConfigError(input + ": no such file or directory");
    }
    if (here.empty()) throw ConfigError(input + ": no run.h5 found");
    files.insert(files.end(), here.begin(), here.end());
  }
  // One entry per file, however it was reached.
  std::vector<std::pair<fs::path, fs::path>> unique;  // (absolute normal, as given)
  for (const auto& f : files) {
    auto abs = fs::absolute(f).lexically_normal();
    if (std::none_of(unique.begin(), unique.end(), [&](const auto& u) { return u.first == abs; }))
      unique.emplace_back(abs, f);
  }
  FoundRuns found;
  std::vector<fs::path> dirs;
  for (const auto& [abs, given] : unique) {
    try {
      found.runs.push_back(read_run(given.string()));
      dirs.push_back(abs.parent_path());
    } catch (const DataError& e) {
      found.warnings.push_back(std::string(e.what()) + " (skipped)");
    }
  }
  // Names: run directories relative to the deepest directory holding them all.
  if (!dirs.empty()) {
    fs::path common = dirs[0];
    for (const auto& d : dirs) {
      fs::path c;
      auto a = common.begin(), b = d.begin();
      for (; a != common.end() && b != d.end() && *a == *b; ++a, ++b) c /= *a;
      common = c;
    }
    for (size_t i = 0; i < dirs.size(); ++i) {
      std::string name = dirs[i].lexically_relative(common).string();
      if (name.empty() || name == ".") name = dirs[i].filename().string();
      if (name.empty()) name = "run";
      found.runs[i].name = name;
    }
  }
  std::sort(found.runs.begin(), found.runs.end(), [](const RunData& a, const RunData& b) {
    return a.name != b.name ? a.name < b.name : a.file < b.file;
  });
  return found;
}

namespace {
void flatten_into(const Json& value, const std::string& prefix, std::map<std::string, Json>& out) {
  if (value.is_object() && (!value.empty() || prefix.empty())) {
    for (auto it = value.begin(); it != value.end(); ++it)
      flatten_into(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = value;
  }
}
}  // namespace

std::map<std::string, Json> flatten_config(const Json& config) {
  std::map<std::string, Json> out;
  flatten_into(config, "", out);
  return out;
}

std::string value_label(const Json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number()) {
    const double v = value.get<double>();
    char buf[64];
    if (std::isfinite(v) && v == std::floor(v) && std::abs(v) < 1e15)
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    else
      std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
  }
  return value.dump();
}

std::string short_key(const std::string& key, const std::vector<std::string>& all_keys) {
  auto shorten = [](const std::string& k) {
    const auto dot = k.rfind('.');
    if (dot == std::string::npos) return k;
    const std::string last = k.substr(dot + 1);
    if (last == "name") return k.substr(0, dot);  // "strategy.name" -> "strategy"
    return last;
  };
  const std::string s = shorten(key);
  for (const auto& other : all_keys)
    if (other != key && shorten(other) == s) return key;
  return s;
}

bool value_less(const Json& a, const Json& b) {
  auto rank = [](const Json& v) {
    if (v.is_null()) return 0;
    if (v.is_number()) return 1;
    if (v.is_boolean()) return 2;
    if (v.is_string()) return 3;
    return 4;
  };
  const int ra = rank(a), rb = rank(b);
  if (ra != rb) return ra < rb;
  switch (ra) {
    case 0: return false;
    case 1: return a.get<double>() < b.get<double>();
    case 2: return !a.get<bool>() && b.get<bool>();
    case 3: return a.get<std::string>() < b.get<std::string>();
    default: return a.dump() < b.dump();
  }
}

namespace {
struct ValuesLess {
  bool operator()(const std::vector<Json>& a, const std::vector<Json>& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), value_less);
  }
};
}  // namespace

namespace {
// Whether `key` ("strategy.k") of a run with config `flat` has the default
// value of the run's plugin in that slot (false when there is no default).
bool is_plugin_default(const std::map<std::string, Json>& flat, const std::string& key, const Json& value) {
  const auto dot = key.find('.');
  if (dot == std::string::npos) return false;
  const std::string slot = key.substr(0, dot), sub = key.substr(dot + 1);
  auto name = flat.find(slot + ".name");
  if (sub == "name" || name == flat.end() || !name->second.is_string()) return false;
  const auto& registry = Registry::global();
  if (!registry.contains(slot, name->second.get<std::string>())) return false;
  for (const auto& k : registry.get(slot, name->second.get<std::string>()).schema)
    if (k.name == sub) return !k.default_value.is_null() && !value_less(k.default_value, value) &&
                              !value_less(value, k.default_value);
  return false;
}
}  // namespace

Grouping group_runs(const std::vector<const RunData*>& runs, const std::vector<std::string>& by,
                    const std::set<std::string>& ignore) {
  std::vector<std::map<std::string, Json>> flat;
  std::set<std::string> all, specific;
  for (const auto* r : runs) {
    flat.push_back(flatten_config(r->config));
    for (const auto& [k, v] : flat.back()) all.insert(k);
    specific.merge(run_specific_keys(r->config));
  }
  auto value_of = [&](size_t i, const std::string& key) {
    auto it = flat[i].find(key);
    return it == flat[i].end() ? Json() : it->second;
  };
  Grouping out;
  if (!by.empty()) {
    std::vector<std::string> known(all.begin(), all.end());
    for (const auto& key : by)
      if (!all.count(key) && !runs.empty())
        throw ConfigError("--by: no run has the config key '" + key + "'" + did_you_mean(key, known));
    out.keys = by;
  } else {
    // The keys whose values are not the same in every run.
    for (const auto& key : all) {
      if (specific.count(key) || ignore.count(key)) continue;
      for (size_t i = 1; i < runs.size(); ++i)
        if (value_less(value_of(i, key), value_of(0, key)) || value_less(value_of(0, key), value_of(i, key))) {
          out.keys.push_back(key);
          break;
        }
    }
    auto strategy = std::find(out.keys.begin(), out.keys.end(), "strategy.name");
    if (strategy != out.keys.end()) std::rotate(out.keys.begin(), strategy, strategy + 1);
  }
  std::map<std::vector<Json>, std::vector<size_t>, ValuesLess> groups;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::vector<Json> values;
    for (const auto& key : out.keys) values.push_back(value_of(i, key));
    groups[values].push_back(i);
  }
  // Labels and columns: the keys that take two values, and a plugin's keys
  // that only some runs have (the alpha of alpha_beta, the k of
  // mutual_information) where they differ from the plugin's default: they
  // say which setting the group ran (a search's choice, say); at their
  // defaults they are implied by the plugin's name.
  std::vector<size_t> shown;
  for (size_t k = 0; k < out.keys.size(); ++k) {
    const auto& key = out.keys[k];
    std::vector<Json> distinct;
    bool missing = false, non_default = false;
    for (const auto& entry : groups) {
      const Json& v = entry.first[k];
      missing = missing || v.is_null();
      if (v.is_null()) continue;
      non_default = non_default || !is_plugin_default(flat[entry.second.front()], key, v);
      if (std::none_of(distinct.begin(), distinct.end(),
                       [&](const Json& d) { return !value_less(d, v) && !value_less(v, d); }))
        distinct.push_back(v);
    }
    const bool name = key.size() > 5 && key.compare(key.size() - 5, 5, ".name") == 0;
    if (!by.empty() || name || distinct.size() > 1 || (missing && non_default)) shown.push_back(k);
  }
  auto shown_values = [&](const std::vector<Json>& values) {
    std::vector<Json> v;
    for (size_t k : shown) v.push_back(values[k]);
    return v;
  };
  std::set<std::vector<Json>, ValuesLess> seen;
  for (const auto& entry : groups) seen.insert(shown_values(entry.first));
  if (seen.size() != groups.size()) {
    shown.clear();
    for (size_t k = 0; k < out.keys.size(); ++k) shown.push_back(k);
  }
  std::vector<std::string> keys;
  for (size_t k : shown) keys.push_back(out.keys[k]);
  std::vector<std::pair<std::vector<Json>, const std::vector<size_t>*>> ordered;
  for (const auto& entry : groups) ordered.emplace_back(shown_values(entry.first), &entry.second);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return ValuesLess()(a.first, b.first); });
  out.keys = keys;
  for (const auto& [values, members] : ordered) {
    RunGroup g;
    g.members = *members;
    std::vector<std::string> parts;
    for (size_t k = 0; k < out.keys.size(); ++k) {
      g.values.emplace_back(out.keys[k], values[k]);
      if (values[k].is_null() && by.empty()) continue;  // a key this group's runs lack (strategy.k of "none")
      parts.push_back(short_key(out.keys[k], out.keys) + "=" + value_label(values[k]));
    }
    g.label = parts.empty() ? "strategy=" + runs[g.members[0]]->strategy() : join(parts, ", ");
    out.groups.push_back(std::move(g));
  }
  return out;
}

}  // namespace sgs::analysis
