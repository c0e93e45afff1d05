#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/registry.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace sgs {

const std::vector<Slot>& config_slots() {
  static const std::vector<Slot> slots = {
      {"dataset", "dataset", nullptr},
      {"model", "model", nullptr},
      {"optimizer", "optimizer", "sgd"},
      {"schedule", "schedule", "cosine"},
      {"strategy", "strategy", "none"},
  };
  return slots;
}

void RunSettings::declare(Declare<RunSettings>& d) {
  using R = RunSettings;
  d.key(&R::description, "description", "free text describing the experiment").specific_to_run();
  d.key(&R::seed, "seed", "seed of every random draw (weights, data order, augmentation)").ge(0).specific_to_run();
  d.key(&R::epochs, "epochs", "number of training epochs").ge(1);
  d.key(&R::batch_size, "batch_size", "training batch size per rank (global batch: batch_size x ranks)").ge(1);
  d.key(&R::eval_batch_size, "eval_batch_size", "batch size for evaluation").ge(1).specific_to_run();
  d.choice(&R::device, "device", {"auto", "cpu", "cuda"}, "where to train; auto = cuda when available")
      .specific_to_run();
  // Fixed bounds, the same on every machine that validates (a login node, a
  // GPU node): values beyond them are typing mistakes that would abort or hang.
  d.key(&R::threads, "threads", "intra-op threads; 0 = all cores; at most 1024").ge(0).le(1024).specific_to_run();
  d.key(&R::data_workers, "data_workers", "loader threads preparing batches ahead; 0 = in the trainer; at most 256")
      .ge(0)
      .le(256)
      .specific_to_run();
  d.key(&R::label_smoothing, "label_smoothing", "label smoothing of the cross-entropy loss").ge(0).lt(1);
  d.key(&R::grad_clip_norm, "grad_clip_norm", "clip the global gradient norm to this; 0 = off").ge(0);
  d.choice(&R::evaluate, "evaluate", {"auto", "val", "test", "both", "none"},
           "what to evaluate each epoch; auto = val when a split is carved out, and test");
  d.key(&R::checkpoint, "checkpoint", "write checkpoint.pt at every epoch end").specific_to_run();
  d.key(&R::sync_batchnorm, "sync_batchnorm", "data-parallel runs: BatchNorm statistics over all ranks' batches");
  d.choice(&R::precision, "precision", {"fp32", "bf16", "fp16"},
           "forward and loss under autocast in this type (weights, gradients, optimizer state stay fp32); "
           "fp16 (CUDA only) with dynamic loss scaling");
  d.choice(&R::memory_format, "memory_format", {"contiguous", "channels_last"},
           "memory order of the weights and batches (channels_last: NHWC)");
  d.key(&R::cudnn_benchmark, "cudnn_benchmark", "CUDA: let cuDNN pick the fastest convolution algorithms")
      .specific_to_run();
}

void DeploySettings::declare(Declare<DeploySettings>& d) {
  using D = DeploySettings;
  d.key(&D::int8, "int8", "when training completes, quantize the fused model to int8 (as sgs quantize does) and "
                          "record it in run.h5 under /deploy/int8")
      .specific_to_run();
  d.key(&D::calib_batches, "calib_batches", "calibration batches of un-augmented training images").ge(1).specific_to_run();
  d.choice(&D::weights, "weights", {"per-channel", "per-tensor"}, "int8 weight scales").specific_to_run();
  d.choice(&D::activations, "activations", {"symmetric", "asymmetric"},
           "int8 activation scales: symmetric, or asymmetric with a zero point")
      .specific_to_run();
  d.choice(&D::calibration, "calibration", {"minmax", "percentile", "mse"}, "how activation ranges are calibrated")
      .specific_to_run();
  d.key(&D::percentile, "percentile", "calibration percentile: the percentile of values kept").gt(50).le(100)
      .specific_to_run();
}

DeploySettings DeploySettings::of(const Json& resolved) {
  return read_options<DeploySettings>(Options(resolved.value("deploy", Json::object()), "deploy"));
}

std::string int8_key(const std::string& weights, const std::string& activations, const std::string& calibration) {
  return weights + "_" + activations + "_" + calibration;
}

const std::vector<Section>& config_sections() {
  static const std::vector<Section> sections = {{"deploy", [] () -> const Schema& { return schema_of<DeploySettings>(); }}};
  return sections;
}

RunSettings RunSettings::of(const Json& resolved) {
  return read_options<RunSettings>(Options(resolved, ""));
}

const Schema& run_schema() { return schema_of<RunSettings>(); }

std::set<std::string> run_specific_keys(const Json& config) {
  std::set<std::string> out;
  for (const auto& k : run_schema())
    if (k.run_specific) out.insert(k.name);
  for (const auto& section : config_sections())
    for (const auto& k : section.schema())
      if (k.run_specific) out.insert(std::string(section.key) + "." + k.name);
  const auto& registry = Registry::global();
  for (const auto& slot : config_slots()) {
    if (!config.contains(slot.key) || !config[slot.key].is_object()) continue;
    const Json& name = config[slot.key].value("name", Json());
    if (!name.is_string() || !registry.contains(slot.kind, name.get<std::string>())) continue;
    for (const auto& k : registry.get(slot.kind, name.get<std::string>()).schema)
      if (k.run_specific) out.insert(std::string(slot.key) + "." + k.name);
  }
  return out;
}

namespace {

// Parses with a callback that refuses a key seen twice in one object (the
// JSON standard leaves that open; nlohmann keeps the last one silently).
template <class J>
J parse_strict(const std::string& text, const std::string& source) {
  std::vector<std::vector<std::string>> seen;  // keys of each open object
  std::vector<std::string> path;               // the key being read in each open object
  auto callback = [&](int depth, typename J::parse_event_t event, J& parsed) {
    using E = typename J::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth >= kMaxJsonDepth) {
      std::string where;
      for (const auto& p : path) where += (where.empty() ? "" : ".") + p;
      throw ConfigError(source + ": " + (where.empty() ? std::string() : where + ": ") + "nested deeper than " +
                        std::to_string(kMaxJsonDepth) + " levels (arrays and objects)");
    }
    if (event == E::object_start) {
      seen.emplace_back();
      path.emplace_back();
    } else if (event == E::object_end) {
      if (!seen.empty()) seen.pop_back();
      if (!path.empty()) path.pop_back();
    } else if (event == E::key) {
      const std::string key = parsed.template get<std::string>();
      auto& keys = seen.back();
      path.back() = key;
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
        std::string where;
        for (const auto& p : path) where += (where.empty() ? "" : ".") + p;
        throw ConfigError(source + ": " + where + ": duplicate key (given twice in one object)");
      }
      keys.push_back(key);
    }
    return true;
  };
  try {
    return J::parse(text, callback);
  } catch (const typename J::exception& e) {
    // parse_error: the position; out_of_range (e.g. 1e999): the number.
    std::string what = e.what();
    for (const char* tag : {"parse error", "number overflow"}) {
      auto pos = what.find(tag);
      if (pos != std::string::npos) {
        what = what.substr(pos);
        break;
      }
    }
    throw ConfigError(source + ": invalid JSON: " + what);
  }
}

}  // namespace

Json parse_json_text(const std::string& text, const std::string& source) { return parse_strict<Json>(text, source); }

nlohmann::ordered_json parse_ordered_json_text(const std::string& text, const std::string& source) {
  return parse_strict<nlohmann::ordered_json>(text, source);
}

Json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_json_text(buffer.str(), path);
}

namespace {

const Slot* find_slot(const std::string& key) {
  for (const auto& s : config_slots())
    if (key == s.key) return &s;
  return nullptr;
}

const Section* find_section(const std::string& key) {
  for (const auto& s : config_sections())
    if (key == s.key) return &s;
  return nullptr;
}

std::vector<std::string> top_level_keys() {
  std::vector<std::string> keys;
  for (const auto& k : run_schema()) keys.push_back(k.name);
  for (const auto& s : config_slots()) keys.push_back(s.key);
  for (const auto& s : config_sections()) keys.push_back(s.key);
  return keys;
}

// --set SECTION.KEY=VALUE, typed by the section's schema.
void override_section_key(Json& raw, const Section& section, const std::string& path, const std::string& rest,
                          const std::string& text) {
  const Schema& schema = section.schema();
  const Key* key = find_key(schema, rest);
  if (key == nullptr) {
    std::vector<std::string> known;
    for (const auto& k : schema) known.push_back(k.name);
    throw ConfigError(path + ": unknown key" + did_you_mean(rest, known) + " (known: " + join(known, ", ") + ")");
  }
  if (!raw.contains(section.key) || !raw[section.key].is_object()) raw[section.key] = Json::object();
  raw[section.key][rest] = parse_typed(text, path, *key);
}

[[noreturn]] void unknown_top(const std::string& key) {
  auto known = top_level_keys();
  throw ConfigError(key + ": unknown key" + did_you_mean(key, known) + " (known: " + join(known, ", ") + ")");
}

// The plugin name chosen in a slot (raw form), or the slot's default.
std::string slot_plugin_name(const Json& raw, const Slot& slot) {
  if (raw.contains(slot.key)) {
    const Json& v = raw[slot.key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("name")) {
      if (!v["name"].is_string()) throw ConfigError(std::string(slot.key) + ".name: expected a string");
      return v["name"].get<std::string>();
    }
    if (!v.is_object()) throw ConfigError(std::string(slot.key) + ": expected an object {\"name\": ...} or a plugin name");
  }
  if (slot.default_name == nullptr)
    throw ConfigError(std::string(slot.key) + ".name: missing required key (the " + slot.kind + " to use; known: " +
                      join(Registry::global().names(slot.kind), ", ") + ")");
  return slot.default_name;
}

std::string with_slot_path(const Slot& slot, const ConfigError& e) {
  // Registry errors do not know the path; prefix it.
  return std::string(slot.key) + ".name: " + e.what();
}

}  // namespace

void apply_override(Json& raw, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set '" + text_excerpt(assignment) + "': expected KEY=VALUE, e.g. optimizer.lr=0.05");
  std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  if (path.front() == '.' || path.back() == '.' || path.find("..") != std::string::npos)
    throw ConfigError("--set '" + text_excerpt(assignment) + "': the key '" + path +
                      "' has an empty part; expected KEY=VALUE with a key such as epochs or optimizer.lr");
  if (!raw.is_object()) raw = Json::object();
  auto dot = path.find('.');
  std::string head = path.substr(0, dot);
  const Slot* slot = find_slot(head);
  if (const Section* section = find_section(head)) {
    if (dot == std::string::npos)
      throw ConfigError(path + ": a section of keys: set one of them, e.g. --set " + head + "." +
                        section->schema().front().name + "=...");
    override_section_key(raw, *section, path, path.substr(dot + 1), text);
    return;
  }
  if (dot == std::string::npos) {
    if (slot != nullptr) {  // "--set strategy=acb": a fresh slot with that plugin
      raw[head] = Json{{"name", text}};
      return;
    }
    const Key* key = find_key(run_schema(), head);
    if (key == nullptr) unknown_top(head);
    raw[head] = parse_typed(text, head, *key);
    return;
  }
  if (slot == nullptr) {
    if (find_key(run_schema(), head) != nullptr) throw ConfigError(path + ": '" + head + "' has no sub-keys");
    unknown_top(head);
  }
  std::string rest = path.substr(dot + 1);
  if (raw.contains(head) && raw[head].is_string()) raw[head] = Json{{"name", raw[head]}};
  if (rest == "name") {
    raw[head]["name"] = text;
    return;
  }
  std::string plugin = slot_plugin_name(raw, *slot);
  const PluginInfo* info;
  try {
    info = &Registry::global().get(slot->kind, plugin);
  } catch (const ConfigError& e) {
    throw ConfigError(with_slot_path(*slot, e));
  }
  const Key* key = find_key(info->schema, rest);
  if (key == nullptr) refuse_old_name(info->schema, rest, path);
  if (key == nullptr) {
    std::vector<std::string> known;
    for (const auto& k : info->schema) known.push_back(k.name);
    throw ConfigError(path + ": unknown key for " + slot->kind + " '" + plugin + "'" + did_you_mean(rest, known) +
                      " (known: " + (known.empty() ? std::string("none") : join(known, ", ")) + ")");
  }
  raw[head][rest] = parse_typed(text, path, *key);
}

Json resolve_config(const Json& raw, const std::string& source) {
  try {
    if (!raw.is_object()) throw ConfigError("expected a JSON object at the top level");
    for (auto it = raw.begin(); it != raw.end(); ++it)
      if (find_slot(it.key()) == nullptr && find_section(it.key()) == nullptr &&
          find_key(run_schema(), it.key()) == nullptr)
        unknown_top(it.key());
    Json top = Json::object();
    for (auto it = raw.begin(); it != raw.end(); ++it)
      if (find_slot(it.key()) == nullptr && find_section(it.key()) == nullptr) top[it.key()] = it.value();
    Json out = resolve_object(top, "", run_schema());
    for (const auto& section : config_sections()) {
      const Json value = raw.contains(section.key) ? raw[section.key] : Json::object();
      if (!value.is_object()) throw ConfigError(std::string(section.key) + ": expected an object of keys");
      out[section.key] = resolve_object(value, section.key, section.schema());
    }
    for (const auto& slot : config_slots()) {
      std::string plugin = slot_plugin_name(raw, slot);
      const PluginInfo* info;
      try {
        info = &Registry::global().get(slot.kind, plugin);
      } catch (const ConfigError& e) {
        throw ConfigError(with_slot_path(slot, e));
      }
      Json value = raw.contains(slot.key) && raw[slot.key].is_object() ? raw[slot.key] : Json::object();
      value["name"] = plugin;
      out[slot.key] = resolve_object(value, slot.key, info->schema, {"name"});
    }
    return out;
  } catch (const ConfigError& e) {
    throw ConfigError(source + ": " + e.what());
  }
}

Json load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Json raw = read_json_file(path);
  for (const auto& o : overrides) {
    try {
      apply_override(raw, o);
    } catch (const ConfigError& e) {
      throw ConfigError(path + ": " + e.what());
    }
  }
  return resolve_config(raw, path);
}

bool same_run_config(const Json& previous, const Json& resolved) {
  if (previous == resolved) return true;
  try {
    return resolve_config(previous, "config.json") == resolved;
  } catch (const ConfigError&) {
    return false;  // a key this build refuses: not the same run
  }
}

Options slot_options(const Json& resolved, const std::string& slot) {
  return Options(resolved.at(slot), slot);
}

}  // namespace sgs
