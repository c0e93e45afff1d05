// Config schemas: every plugin declares its keys (type, default, range, help),
// and the same declaration drives validation, `sgs plugins` and the docs.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace sgs {

using Json = nlohmann::json;

enum class KeyType { Bool, Int, Float, String, IntList, FloatList, StringList, Json };

const char* key_type_name(KeyType t);

// One config key of a plugin. Plugins do not build keys by hand: they
// declare a typed options struct (sgs/options.h), whose declaration yields
// the keys, e.g. d.key(&SgdOptions::lr, "lr", "learning rate").gt(0).
struct Key {
  std::string name;
  KeyType type = KeyType::Float;
  Json default_value;  // null when the key is required or optional-without-default
  std::string help;
  bool required = false;
  bool nullable = false;  // null is a valid value (means "unset")
  std::optional<double> min, max;
  bool min_exclusive = false, max_exclusive = false;
  std::vector<std::string> choices;
  std::optional<std::size_t> size;  // lists: exactly this many elements
  // Does not change what a run computes (seed, threads, where files are):
  // `sgs report` groups runs that differ only in such keys.
  bool run_specific = false;
  std::vector<std::string> old_names;  // former names, refused with a pointer to this one

  Key& ge(double v) { min = v; min_exclusive = false; return *this; }
  Key& gt(double v) { min = v; min_exclusive = true; return *this; }
  Key& le(double v) { max = v; max_exclusive = false; return *this; }
  Key& lt(double v) { max = v; max_exclusive = true; return *this; }
  Key& allow_null() { nullable = true; return *this; }
  Key& exactly(std::size_t n) { size = n; return *this; }
  Key& specific_to_run() { run_specific = true; return *this; }
  Key& renamed_from(std::vector<std::string> names) { old_names = std::move(names); return *this; }

  // "number > 0", "one of {a, b}", ... for messages and listings.
  std::string describe_expected() const;
};

using Schema = std::vector<Key>;

// Checks `value` (an object) against `schema`, fills defaults and returns the
// resolved object. `path` prefixes messages ("optimizer"); `skip` names keys
// handled by the caller (the slot's "name"). Throws ConfigError.
Json resolve_object(const Json& value, const std::string& path, const Schema& schema,
                    const std::vector<std::string>& skip = {});

// Checks one value against one key; returns it converted (e.g. 3 -> 3.0).
Json check_value(const Json& value, const std::string& path, const Key& key);

// Parses a command-line string as a value of the key's type ("0.9", "true", "[1,2]").
Json parse_typed(const std::string& text, const std::string& path, const Key& key);

const Key* find_key(const Schema& schema, const std::string& name);

// Arrays and objects nest at most this deep in any JSON sgs reads (configs,
// suites, --set values); deeper is refused as a mistake, not recursed into.
constexpr int kMaxJsonDepth = 64;

// Parses a --set value's text (nesting bounded as above); ConfigError "PATH: ..."
// when it is not JSON or nests too deep.
Json parse_value_text(const std::string& text, const std::string& path);

// What a message quotes of a value: its JSON text, at most 40 characters
// ("[[1, 2, 3], [4, 5, 6], [7, 8, 9]]" -> "[[1,2,3],[4,5,6],[7,8,9],[10,11,1..."),
// and of a text the user gave.
std::string excerpt(const Json& value);
std::string text_excerpt(const std::string& text);

// Throws ConfigError "PATH: no longer a key: give NEW instead (...)" when
// `name` is a former name of a key of `schema`; returns otherwise.
void refuse_old_name(const Schema& schema, const std::string& name, const std::string& path);

// The integer a JSON number holds, exactly (check_value has accepted it as an int).
int64_t json_integer(const Json& v);

// A plugin's resolved config (resolve_object's output) and where it sits
// ("optimizer"): what Kind::Factory receives. Plugins read it only through
// their typed options struct (read_options in sgs/options.h).
class Options {
 public:
  Options() = default;
  Options(Json value, std::string path) : value_(std::move(value)), path_(std::move(path)) {}

  const Json& json() const { return value_; }
  const std::string& path() const { return path_; }

 private:
  Json value_ = Json::object();
  std::string path_;
};

}  // namespace sgs
