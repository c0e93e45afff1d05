// sgs config CONFIG.json [--set k=v]...: validate a config and print it resolved.
#include "verb.h"

#include <sgs/config.h>

#include <iostream>

namespace {

int run_config(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  std::string path;
  std::vector<std::string> sets;
  opts.add_options()("config", po::value(&path)->required(), "experiment config (JSON)")(
      "set", po::value(&sets)->composing(), "override a key: --set optimizer.lr=0.05 (repeatable)");
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("config", "CONFIG.json [--set KEY=VALUE]...", args, opts, pos, vm)) return 0;
  std::cout << sgs::load_config(path, sets).dump(2) << "\n";
  return 0;
}

}  // namespace

SGS_VERB("config", "validate a config and print it resolved (defaults filled in)", run_config)
