// The plugin registry: components are created by name from config.
//
// Every plugin registers itself in its own file with one macro line, e.g.
//   SGS_REGISTER(ScheduleKind, cosine, "cosine annealing with warm-up", CosineOptions, factory);
// Out-of-tree plugins are shared libraries exposing
//   extern "C" void sgs_register_plugins(sgs::Registry* registry);
// which `sgs --plugin lib.so` calls once after dlopen.
#pragma once

#include <sgs/options.h>
#include <sgs/schema.h>

#include <any>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sgs {

struct PluginInfo {
  std::string kind;         // "model", "dataset", "optimizer", "schedule", "strategy"
  std::string name;         // registry key = config "name"
  std::string description;  // one line
  Schema schema;            // the plugin's own keys (besides "name")
  std::any factory;         // std::function of the kind's Factory type
  std::string origin;       // where it was registered (source file or library)
};

class Registry {
 public:
  static Registry& global();

  // Throws std::logic_error naming both origins on a duplicate.
  void add(PluginInfo info);

  bool contains(const std::string& kind, const std::string& name) const;
  // Throws ConfigError "unknown <kind> 'x'; did you mean 'y'? (known: ...)".
  const PluginInfo& get(const std::string& kind, const std::string& name) const;
  std::vector<std::string> names(const std::string& kind) const;
  std::vector<std::string> kinds() const;

  // A plugin this build was configured without (an optional dependency
  // absent): get() refuses it with `reason` instead of "unknown"; names()
  // does not list it. A plugin of that name added later replaces the note.
  void add_absent(const std::string& kind, const std::string& name, const std::string& reason);
  // The kind's absent plugins: name -> reason.
  std::map<std::string, std::string> absent(const std::string& kind) const;

  // The kind's factory, typed: Kind::Factory (see the kind headers).
  template <class Kind>
  const typename Kind::Factory& factory(const std::string& name) const {
    const PluginInfo& info = get(Kind::kName, name);
    const auto* f = std::any_cast<typename Kind::Factory>(&info.factory);
    if (f == nullptr) throw_bad_factory(info);
    return *f;
  }

 private:
  [[noreturn]] static void throw_bad_factory(const PluginInfo& info);
  std::map<std::string, std::map<std::string, PluginInfo>> plugins_;
  std::map<std::string, std::map<std::string, std::string>> absent_;
};

// Loads an out-of-tree plugin library; throws std::runtime_error naming the
// library and the missing symbol or dlopen error.
void load_plugin_library(const std::string& path, Registry& registry = Registry::global());
// `--plugin PATH` for every library loaded so far (absolute paths, in
// order): child `sgs` processes (suite runs, Slurm tasks) are started with
// them so that they know the same plugins.
std::vector<std::string> plugin_arguments();

// The entry of a plugin whose options struct is T (sgs/options.h) and whose
// factory takes (const T&, rest...) where Kind::Factory takes (const
// Options&, rest...): what SGS_REGISTER adds, and what an out-of-tree
// library hands to Registry::add, e.g.
//   registry->add(sgs::plugin_info<sgs::ScheduleKind, DecayOptions>("inverse_time", "...", "lib.so", factory));
template <class Kind, class T, class F>
PluginInfo plugin_info(std::string name, std::string description, std::string origin, F factory) {
  using Factory = typename Kind::Factory;
  return PluginInfo{Kind::kName, std::move(name), std::move(description), schema_of<T>(),
                    Factory(detail::typed_factory<T>(std::move(factory), static_cast<Factory*>(nullptr))),
                    std::move(origin)};
}

namespace detail {
struct Registrar {
  explicit Registrar(PluginInfo info);
};
struct AbsentRegistrar {
  AbsentRegistrar(const char* kind, const char* name, const char* reason);
};
}  // namespace detail

}  // namespace sgs

#define SGS_CONCAT_INNER(a, b) a##b
#define SGS_CONCAT(a, b) SGS_CONCAT_INNER(a, b)

// Registers `name` (an identifier, also the config name) under Kind, with
// the options struct (sgs/options.h) that declares its keys; `factory` takes
// that struct where Kind::Factory takes const Options& (the factory is the
// last argument and may contain commas).
#define SGS_REGISTER(Kind, name, description, OptionsType, ...)                              \
  namespace {                                                                                 \
  const ::sgs::detail::Registrar SGS_CONCAT(sgs_registrar_, __COUNTER__)(                     \
      ::sgs::plugin_info<Kind, OptionsType>(#name, description, __FILE__, __VA_ARGS__));      \
  }

// Notes that `name` under Kind is left out of this build, and why, e.g.
//   SGS_REGISTER_ABSENT(DatasetKind, image_folder, "it needs OpenCV, which this build was configured without");
#define SGS_REGISTER_ABSENT(Kind, name, reason)                                                \
  namespace {                                                                                  \
  const ::sgs::detail::AbsentRegistrar SGS_CONCAT(sgs_absent_, __COUNTER__)(Kind::kName, #name, reason); \
  }
