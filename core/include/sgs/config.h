// One JSON file per experiment, validated against the declared schemas of the
// chosen plugins. The resolved config (defaults filled in) is what gets logged.
#pragma once

#include <sgs/options.h>
#include <sgs/schema.h>

#include <set>
#include <string>
#include <vector>

namespace sgs {

// A plugin slot of the config: {"name": ..., <that plugin's keys>}.
struct Slot {
  const char* key;           // "optimizer"
  const char* kind;          // registry kind, "optimizer"
  const char* default_name;  // nullptr when the slot is required
};

// The slots of a run config, in order.
const std::vector<Slot>& config_slots();

// The run's own (top-level, non-slot) keys, read once from the resolved
// config by whoever needs them (the trainer, sgs fuse).
struct RunSettings : PluginOptions {
  std::string description;
  int64_t seed = 0, epochs = 10, batch_size = 128, eval_batch_size = 500;
  std::string device = "auto";
  int64_t threads = 0, data_workers = 2;
  double label_smoothing = 0.0, grad_clip_norm = 0.0;
  std::string evaluate = "auto";
  bool checkpoint = true, sync_batchnorm = false;
  std::string precision = "fp32", memory_format = "contiguous";
  bool cudnn_benchmark = true;

  static void declare(Declare<RunSettings>& d);
  // The settings of a resolved config.
  static RunSettings of(const Json& resolved);
};

// The schema of RunSettings: seed, epochs, batch_size, ...
const Schema& run_schema();

// The config's "deploy" section: what happens to the model once the run has
// completed (keys in docs/guide.md, "INT8"). Every key is specific to the
// run (it does not change what training computes).
struct DeploySettings : PluginOptions {
  bool int8 = false;  // quantize the fused model (sgs quantize) when training completes
  int64_t calib_batches = 32;
  std::string weights = "per-channel", activations = "symmetric", calibration = "minmax";
  double percentile = 99.99;

  static void declare(Declare<DeploySettings>& d);
  static DeploySettings of(const Json& resolved);
};

// The name of an int8 configuration's record under /deploy/int8:
// "per-channel_symmetric_minmax" (the default one, kDefaultInt8).
std::string int8_key(const std::string& weights, const std::string& activations, const std::string& calibration);
inline constexpr const char* kDefaultInt8 = "per-channel_symmetric_minmax";

// A section of the config: an object of fixed keys (not a plugin slot).
struct Section {
  const char* key;  // "deploy"
  const Schema& (*schema)();
};
const std::vector<Section>& config_sections();

// The keys of a resolved config that do not change what the run computes
// (seed, threads, paths; keys marked specific_to_run in the schemas of the
// run and of its plugins), dotted: "seed", "dataset.root".
std::set<std::string> run_specific_keys(const Json& config);

// Reads and parses a JSON file; throws ConfigError naming the file.
// Duplicate keys and numbers beyond a double's range are refused.
Json read_json_file(const std::string& path);

// The same for text; `source` names it in messages ("exp.json").
Json parse_json_text(const std::string& text, const std::string& source);
nlohmann::ordered_json parse_ordered_json_text(const std::string& text, const std::string& source);

// Applies one "a.b=value" override to the raw config; the value is typed by
// the schema of the key it names. Throws ConfigError.
void apply_override(Json& raw, const std::string& assignment);

// Validates `raw` and returns the resolved config. `source` prefixes messages
// ("exp.json"). Throws ConfigError with a one-line message naming the path.
Json resolve_config(const Json& raw, const std::string& source);

// read_json_file + apply_override for each --set + resolve_config.
Json load_config(const std::string& path, const std::vector<std::string>& overrides);

// Whether the config a run directory holds (config.json, as an earlier build
// resolved it) is `resolved`: it is resolved again first, so keys added to
// the schemas since, at their defaults, do not count as a difference.
bool same_run_config(const Json& previous, const Json& resolved);

// The resolved slot as Options (path = slot key).
Options slot_options(const Json& resolved, const std::string& slot);

}  // namespace sgs
