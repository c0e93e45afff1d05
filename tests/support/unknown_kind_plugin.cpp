// A plugin library that registers a plugin of a kind sgs does not have
// ("strateg": a typo of "strategy"); `sgs --plugin` refuses it when loading.
#include <sgs/registry.h>

#include <utility>

extern "C" void sgs_register_plugins(sgs::Registry* registry) {
  sgs::PluginInfo info;
  info.kind = "strateg";
  info.name = "typo";
  info.description = "a plugin of an unknown kind";
  info.origin = "unknown_kind_plugin.cpp";
  registry->add(std::move(info));
}
