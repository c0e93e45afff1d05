// Building any registered plugin for a test, so that tests can loop over the
// registry and a new plugin is tested the moment it is registered.
//
// A plugin gets its defaults plus the keys of a table in plugins.cpp: values
// for keys without a default (fixed's matrix, alpha_beta's alpha and beta),
// small sizes where the defaults are slow, and for datasets a tiny copy of
// their on-disk format. A registered plugin that cannot be built from its
// defaults and has no entry there fails "registry: every plugin can be built
// for the tests", which names the table.
#pragma once

#include <sgs/config.h>
#include <sgs/dataset.h>
#include <sgs/model.h>
#include <sgs/registry.h>
#include <sgs/strategy.h>

#include <filesystem>
#include <memory>
#include <string>

namespace sgs::test {

// The plugin slot the tests use for `kind`/`name`: {"name": name} plus the
// table's keys, plus `extra` over them. Datasets write their files under
// `scratch` (needed for datasets only).
Json test_slot(const std::string& kind, const std::string& name, const Json& extra = Json::object(),
               const std::filesystem::path& scratch = {});
// Whether the table has an entry for the plugin.
bool has_test_keys(const std::string& kind, const std::string& name);
// The (kind, name) entries of the table, to check that none is stale.
std::vector<std::pair<std::string, std::string>> test_key_entries();

// test_slot resolved against the plugin's schema (ConfigError as the config gives).
Options test_options(const std::string& kind, const std::string& name, const Json& extra = Json::object(),
                     const std::filesystem::path& scratch = {});

std::unique_ptr<Strategy> make_strategy(const std::string& name, const Json& extra = Json::object());
// A strategy from exactly `keys` (defaults for the others; no test keys added).
std::unique_ptr<Strategy> strategy_from(const std::string& name, Json keys = Json::object());
// max |a - b| / max |b| in float64 (b all zero: divided by 1e-30).
double rel_diff(const torch::Tensor& a, const torch::Tensor& b);
// Built from the default generator seeded with 0, through `factory`.
std::shared_ptr<Model> make_model(const std::string& name, const ModelSpec& spec, ConvFactory& factory,
                                  const Json& extra = Json::object());

// The conv of a case of the reference files (tests/reference/*.json): its
// "in", "out", "k" (square), "stride" and "padding".
ConvSpec reference_spec(const Json& c);

// Names of the strategies whose conv_factory() is not null (structural
// reparameterizations), built as make_strategy builds them.
std::vector<std::string> structural_strategies();

}  // namespace sgs::test
