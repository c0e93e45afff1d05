// sgs plugins [KIND] [--json]: list the registered plugins and their keys.
#include "verb.h"

#include <sgs/errors.h>
#include <sgs/registry.h>

#include <iostream>

namespace {

std::string default_text(const sgs::Key& k) {
  if (k.required) return "required";
  if (k.default_value.is_string()) return "\"" + k.default_value.get<std::string>() + "\"";
  return k.default_value.dump();
}

int run_plugins(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  std::string kind;
  opts.add_options()("kind", po::value(&kind), "only this kind (model, dataset, optimizer, schedule, strategy)")(
      "json", "print as JSON");
  po::positional_options_description pos;
  pos.add("kind", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("plugins", "[KIND] [--json]", args, opts, pos, vm)) return 0;
  const auto& reg = sgs::Registry::global();
  auto kinds = reg.kinds();
  if (!kind.empty()) {
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
      throw sgs::ConfigError("plugins: unknown kind '" + kind + "'" + sgs::did_you_mean(kind, kinds) +
                             " (known: " + sgs::join(kinds, ", ") + ")");
    kinds = {kind};
  }
  if (vm.count("json")) {
    sgs::Json out = sgs::Json::object();
    for (const auto& k : kinds)
      for (const auto& name : reg.names(k)) {
        const auto& info = reg.get(k, name);
        sgs::Json keys = sgs::Json::array();
        for (const auto& key : info.schema)
          keys.push_back({{"name", key.name}, {"type", sgs::key_type_name(key.type)}, {"default", key.default_value},
                          {"required", key.required}, {"expected", key.describe_expected()}, {"help", key.help}});
        out[k][name] = {{"description", info.description}, {"keys", keys}};
      }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  for (const auto& k : kinds) {
    std::cout << k << ":\n";
    for (const auto& name : reg.names(k)) {
      const auto& info = reg.get(k, name);
      std::cout << "  " << name << " - " << info.description << "\n";
      for (const auto& key : info.schema)
        std::cout << "      " << key.name << " (" << key.describe_expected() << ", default " << default_text(key)
                  << "): " << key.help << "\n";
    }
    for (const auto& [name, reason] : reg.absent(k)) std::cout << "  " << name << " - not in this build: " << reason << "\n";
  }
  return 0;
}

}  // namespace

SGS_VERB("plugins", "list the registered plugins of every kind, with their config keys", run_plugins)
