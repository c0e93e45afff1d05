#include <sgs/errors.h>
#include <sgs/schema.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>

namespace sgs {

const char* key_type_name(KeyType t) {
  switch (t) {
    case KeyType::Bool: return "bool";
    case KeyType::Int: return "int";
    case KeyType::Float: return "float";
    case KeyType::String: return "string";
    case KeyType::IntList: return "int list";
    case KeyType::FloatList: return "float list";
    case KeyType::StringList: return "string list";
    case KeyType::Json: return "json";
  }
  return "?";
}

namespace {

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string json_kind(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "a list";
    case Json::value_t::object: return "an object";
    default: return "something else";
  }
}

std::string shown(const Json& v) { return excerpt(v); }

[[noreturn]] void fail(const std::string& path, const std::string& msg) {
  throw ConfigError(path + ": " + msg);
}

// 2^53: beyond it a double (how JSON readers commonly hold numbers) no
// longer holds every integer, so an integer written as 1e16 may be rounded.
constexpr double kExactDoubleLimit = 9007199254740992.0;

bool is_integral(const Json& v) {
  // (nlohmann's is_number_integer() holds for unsigned numbers too.)
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
  if (v.is_number_integer()) return true;
  if (v.is_number_float()) {
    double d = v.get<double>();
    return std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= kExactDoubleLimit;
  }
  return false;
}

// The integer a JSON number holds, exactly (is_integral(v) must hold).
int64_t exact_integer(const Json& v) {
  if (v.is_number_unsigned()) return static_cast<int64_t>(v.get<uint64_t>());
  if (v.is_number_integer()) return v.get<int64_t>();
  return static_cast<int64_t>(v.get<double>());
}

std::string why_not_integer(const Json& v, const Key& key) {
  const std::string expected = " (expected " + key.describe_expected() + ")";
  if (v.is_number_unsigned()) return "is beyond a 64-bit integer's range" + expected;
  if (v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>()) {
    if (std::fabs(v.get<double>()) >= 9223372036854775808.0) return "is beyond a 64-bit integer's range" + expected;
    return "is written as a floating-point number beyond 2^53, which a double cannot hold exactly; write its digits";
  }
  return "";
}

Json check_scalar(const Json& v, const std::string& path, const Key& key, KeyType type) {
  switch (type) {
    case KeyType::Bool:
      if (!v.is_boolean()) fail(path, "expected a bool (true/false), got " + json_kind(v) + " " + shown(v));
      return v;
    case KeyType::Int:
      if (!is_integral(v)) {
        const std::string why = why_not_integer(v, key);
        if (!why.empty()) fail(path, shown(v) + " " + why);
        fail(path, "expected an integer, got " + json_kind(v) + " " + shown(v));
      }
      return Json(exact_integer(v));
    case KeyType::Float: {
      if (!v.is_number()) fail(path, "expected a number, got " + json_kind(v) + " " + shown(v));
      const double d = v.get<double>();
      if (!std::isfinite(d)) fail(path, "expected a finite number");
      // Training runs in float32: a value it cannot hold is a mistake.
      if (std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
        fail(path, shown(v) + " is out of range (beyond float32's 3.4e38)");
      return Json(d);
    }
    case KeyType::String:
      if (!v.is_string()) fail(path, "expected a string, got " + json_kind(v) + " " + shown(v));
      if (!key.choices.empty()) {
        auto s = v.get<std::string>();
        bool ok = false;
        for (const auto& c : key.choices) ok = ok || c == s;
        if (!ok)
          fail(path, "expected one of {" + join(key.choices, ", ") + "}, got '" + s + "'" +
                         did_you_mean(s, key.choices));
      }
      return v;
    default: return v;
  }
}

void check_range(const Json& v, const std::string& path, const Key& key, const Json& as_given) {
  if (!v.is_number()) return;
  const double d = v.get<double>();
  if (key.min && (key.min_exclusive ? !(d > *key.min) : !(d >= *key.min)))
    fail(path, "must be " + std::string(key.min_exclusive ? "> " : ">= ") + number_text(*key.min) +
                   ", got " + shown(as_given));
  if (key.max && (key.max_exclusive ? !(d < *key.max) : !(d <= *key.max)))
    fail(path, "must be " + std::string(key.max_exclusive ? "< " : "<= ") + number_text(*key.max) +
                   ", got " + shown(as_given));
}

}  // namespace

std::string Key::describe_expected() const {
  std::string s = key_type_name(type);
  if (size) s = std::to_string(*size) + "-element " + s;
  if (!choices.empty()) s = "one of {" + join(choices, ", ") + "}";
  if (min) s += std::string(min_exclusive ? " > " : " >= ") + number_text(*min);
  if (max) s += std::string(max_exclusive ? " < " : " <= ") + number_text(*max);
  if (nullable) s += " or null";
  return s;
}

Json check_value(const Json& value, const std::string& path, const Key& key) {
  if (value.is_null()) {
    if (key.nullable) return value;
    fail(path, "expected " + key.describe_expected() + ", got null");
  }
  KeyType element;
  switch (key.type) {
    case KeyType::IntList: element = KeyType::Int; break;
    case KeyType::FloatList: element = KeyType::Float; break;
    case KeyType::StringList: element = KeyType::String; break;
    case KeyType::Json: return value;
    default: {
      Json out = check_scalar(value, path, key, key.type);
      check_range(out, path, key, value);
      return out;
    }
  }
  if (!value.is_array()) fail(path, "expected a " + std::string(key_type_name(key.type)) + ", got " + json_kind(value) + " " + shown(value));
  if (key.size && value.size() != *key.size)
    fail(path, "expected " + std::to_string(*key.size) + " elements, got " + std::to_string(value.size()) + " " +
                   shown(value));
  Json out = Json::array();
  for (std::size_t i = 0; i < value.size(); ++i) {
    std::string p = path + "[" + std::to_string(i) + "]";
    Json e = check_scalar(value[i], p, key, element);
    check_range(e, p, key, value[i]);
    out.push_back(e);
  }
  return out;
}

int64_t json_integer(const Json& v) { return exact_integer(v); }

void refuse_old_name(const Schema& schema, const std::string& name, const std::string& path) {
  for (const auto& k : schema)
    for (const auto& old : k.old_names)
      if (old == name)
        fail(path, "no longer a key: give " + k.name + " instead (" + k.describe_expected() + ": " + k.help + ")");
}

const Key* find_key(const Schema& schema, const std::string& name) {
  for (const auto& k : schema)
    if (k.name == name) return &k;
  return nullptr;
}

Json resolve_object(const Json& value, const std::string& path, const Schema& schema,
                    const std::vector<std::string>& skip) {
  if (!value.is_object()) fail(path, "expected an object, got " + json_kind(value));
  std::vector<std::string> known;
  for (const auto& k : schema) known.push_back(k.name);
  for (const auto& s : skip) known.push_back(s);
  auto sub = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
  for (auto it = value.begin(); it != value.end(); ++it) {
    bool ok = false;
    for (const auto& k : known) ok = ok || k == it.key();
    if (!ok) refuse_old_name(schema, it.key(), sub(it.key()));
    if (!ok)
      fail(sub(it.key()), "unknown key" + did_you_mean(it.key(), known) + " (known: " +
                              (known.empty() ? std::string("none") : join(known, ", ")) + ")");
  }
  Json out = Json::object();
  for (const auto& s : skip)
    if (value.contains(s)) out[s] = value[s];
  for (const auto& k : schema) {
    if (value.contains(k.name)) {
      out[k.name] = check_value(value[k.name], sub(k.name), k);
    } else if (k.required) {
      fail(sub(k.name), "missing required key (" + k.describe_expected() + ": " + k.help + ")");
    } else {
      out[k.name] = k.default_value;
    }
  }
  return out;
}

Json parse_typed(const std::string& text, const std::string& path, const Key& key) {
  Json v;
  if (key.type == KeyType::String) {
    v = text;
  } else {
    try {
      v = parse_value_text(text, path);
    } catch (const ConfigError&) {
      if (key.type == KeyType::Json || key.type == KeyType::StringList) throw;
      fail(path, "expected " + key.describe_expected() + ", got '" + text_excerpt(text) + "'");
    }
  }
  return check_value(v, path, key);
}

std::string excerpt(const Json& value) {
  // Dumped with the nesting bounded (kMaxJsonDepth) by every reader.
  return text_excerpt(value.dump());
}

std::string text_excerpt(const std::string& text) {
  if (text.size() <= 40) return text;
  size_t cut = 37;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return text.substr(0, cut) + "...";
}

Json parse_value_text(const std::string& text, const std::string& path) {
  auto bounded = [](int depth, Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw ConfigError("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  };
  try {
    return Json::parse(text, bounded);
  } catch (const ConfigError& e) {
    fail(path, std::string("'") + text_excerpt(text) + "': " + e.what());
  } catch (const Json::exception&) {
    fail(path, "cannot parse '" + text_excerpt(text) + "' as JSON");
  }
}

}  // namespace sgs
