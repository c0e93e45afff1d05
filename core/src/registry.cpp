#include <sgs/errors.h>
#include <sgs/registry.h>

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>

#include <stdexcept>

namespace sgs {

Registry& Registry::global() {
  static Registry registry;
  return registry;
}

void Registry::add(PluginInfo info) {
  if (info.kind.empty() || info.name.empty())
    throw std::logic_error("registry: plugin with an empty kind or name (from " + info.origin + ")");
  auto& of_kind = plugins_[info.kind];
  auto it = of_kind.find(info.name);
  if (it != of_kind.end())
    throw std::logic_error("registry: duplicate " + info.kind + " '" + info.name +
                           "' registered by " + info.origin + " and by " + it->second.origin);
  for (const auto& k : info.schema)
    if (k.name == "name")
      throw std::logic_error("registry: " + info.kind + " '" + info.name +
                             "' declares the reserved key 'name'");
  std::string name = info.name;
  auto a = absent_.find(info.kind);
  if (a != absent_.end()) a->second.erase(name);
  of_kind.emplace(name, std::move(info));
}

void Registry::add_absent(const std::string& kind, const std::string& name, const std::string& reason) {
  if (!contains(kind, name)) absent_[kind][name] = reason;
}

std::map<std::string, std::string> Registry::absent(const std::string& kind) const {
  auto k = absent_.find(kind);
  return k == absent_.end() ? std::map<std::string, std::string>{} : k->second;
}

bool Registry::contains(const std::string& kind, const std::string& name) const {
  auto k = plugins_.find(kind);
  return k != plugins_.end() && k->second.count(name) > 0;
}

const PluginInfo& Registry::get(const std::string& kind, const std::string& name) const {
  auto k = plugins_.find(kind);
  if (k != plugins_.end()) {
    auto it = k->second.find(name);
    if (it != k->second.end()) return it->second;
  }
  auto a = absent_.find(kind);
  if (a != absent_.end() && a->second.count(name) != 0)
    throw ConfigError(kind + " '" + name + "' is not in this build: " + a->second.at(name));
  auto known = names(kind);
  throw ConfigError("unknown " + kind + " '" + name + "'" + did_you_mean(name, known) +
                    " (known: " + (known.empty() ? std::string("none") : join(known, ", ")) + ")");
}

std::vector<std::string> Registry::names(const std::string& kind) const {
  std::vector<std::string> out;
  auto k = plugins_.find(kind);
  if (k != plugins_.end())
    for (const auto& p : k->second) out.push_back(p.first);
  return out;
}

std::vector<std::string> Registry::kinds() const {
  std::vector<std::string> out;
  for (const auto& k : plugins_) out.push_back(k.first);
  return out;
}

void Registry::throw_bad_factory(const PluginInfo& info) {
  throw std::logic_error("registry: " + info.kind + " '" + info.name + "' (from " + info.origin +
                         ") was registered with a factory of the wrong type");
}

namespace {
std::vector<std::string>& loaded_libraries() {
  static std::vector<std::string> libraries;
  return libraries;
}
}  // namespace

std::vector<std::string> plugin_arguments() {
  std::vector<std::string> args;
  for (const auto& lib : loaded_libraries()) args.insert(args.end(), {"--plugin", lib});
  return args;
}

void load_plugin_library(const std::string& path, Registry& registry) {
  // The kinds this build defines: a library adds plugins of these only.
  const std::vector<std::string> kinds = registry.kinds();
  // RTLD_GLOBAL so that the plugin's own typeinfo unifies with ours.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr)
    throw ConfigError("plugin: cannot load '" + path + "': " + std::string(dlerror()));
  using Entry = void (*)(Registry*);
  dlerror();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, "sgs_register_plugins"));
  if (entry == nullptr)
    throw ConfigError("plugin: '" + path +
                      "' does not export the entry point extern \"C\" void "
                      "sgs_register_plugins(sgs::Registry*)");
  try {
    entry(&registry);
  } catch (const std::exception& e) {
    throw ConfigError("plugin: '" + path + "': sgs_register_plugins failed: " + error_message(e));
  } catch (...) {
    throw ConfigError("plugin: '" + path + "': sgs_register_plugins threw an exception that is not a std::exception");
  }
  for (const auto& kind : registry.kinds())
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
      throw ConfigError("plugin: '" + path + "' registers " + kind + " '" + registry.names(kind).front() +
                        "', of a kind sgs does not have" + did_you_mean(kind, kinds) + " (kinds: " + join(kinds, ", ") +
                        ")");
  std::error_code ec;
  const auto absolute = std::filesystem::absolute(path, ec);
  loaded_libraries().push_back(ec ? path : absolute.lexically_normal().string());
}

namespace detail {

Registrar::Registrar(PluginInfo info) { Registry::global().add(std::move(info)); }

AbsentRegistrar::AbsentRegistrar(const char* kind, const char* name, const char* reason) {
  Registry::global().add_absent(kind, name, reason);
}

}  // namespace detail
}  // namespace sgs
