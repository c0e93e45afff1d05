// A plugin's options, declared once: a struct of typed fields holding the
// defaults, and one `declare` function binding each field to its config key.
// The schema (validation, `sgs plugins`, docs) and the typed values the
// factory receives come from that one declaration, so a key cannot be declared
// under one name and read under another.
//
//   struct SgdOptions : sgs::PluginOptions {
//     double lr = 0.1;
//     bool nesterov = false;
//     static void declare(sgs::Declare<SgdOptions>& d) {
//       d.key(&SgdOptions::lr, "lr", "learning rate").gt(0);
//       d.key(&SgdOptions::nesterov, "nesterov", "Nesterov momentum");
//     }
//   };
//   SGS_REGISTER(sgs::OptimizerKind, sgd, "...", SgdOptions,
//                [](const SgdOptions& o, std::vector<torch::Tensor> params) { ... });
//
// A field's type gives the key's type: bool, int64_t, double, std::string,
// std::vector of int64_t / double / std::string, Json (any JSON), and
// std::optional of a scalar (null allowed; null when absent).
#pragma once

#include <sgs/schema.h>

#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace sgs {

// What every plugin's options struct carries besides its fields: where its
// config sits, for messages ("optimizer.nesterov: needs momentum > 0").
struct PluginOptions {
  std::string path;  // "optimizer", "strategy", ...
  std::string where(const std::string& key) const { return path.empty() ? key : path + "." + key; }
};

namespace detail {

template <class V> struct KeyTypeOf;
template <> struct KeyTypeOf<bool> { static constexpr KeyType value = KeyType::Bool; };
template <> struct KeyTypeOf<int64_t> { static constexpr KeyType value = KeyType::Int; };
template <> struct KeyTypeOf<double> { static constexpr KeyType value = KeyType::Float; };
template <> struct KeyTypeOf<std::string> { static constexpr KeyType value = KeyType::String; };
template <> struct KeyTypeOf<std::vector<int64_t>> { static constexpr KeyType value = KeyType::IntList; };
template <> struct KeyTypeOf<std::vector<double>> { static constexpr KeyType value = KeyType::FloatList; };
template <> struct KeyTypeOf<std::vector<std::string>> { static constexpr KeyType value = KeyType::StringList; };
template <> struct KeyTypeOf<Json> { static constexpr KeyType value = KeyType::Json; };

template <class V> struct IsOptional : std::false_type {};
template <class V> struct IsOptional<std::optional<V>> : std::true_type {};

// The resolved value as a field (the schema has checked its type and range).
template <class V>
V field_value(const Json& v) {
  if constexpr (std::is_same_v<V, Json>) {
    return v;
  } else if constexpr (IsOptional<V>::value) {
    if (v.is_null()) return std::nullopt;
    return field_value<typename V::value_type>(v);
  } else if constexpr (std::is_same_v<V, int64_t>) {
    return json_integer(v);
  } else if constexpr (std::is_same_v<V, std::vector<int64_t>>) {
    std::vector<int64_t> out;
    for (const auto& e : v) out.push_back(json_integer(e));
    return out;
  } else {
    return v.get<V>();
  }
}

}  // namespace detail

template <class T>
class Declare {
 public:
  Declare() = default;
  // Defaults from `defaults` rather than from T{}.
  explicit Declare(T defaults) : defaults_(std::move(defaults)) {}

  // A key with the default the struct's field holds.
  // (`field` may be a member of a base of T: shared keys are declared once.)
  template <class V, class C>
  Key& key(V C::*member, std::string name, std::string help) {
    static_assert(std::is_base_of_v<C, T>, "the field is not a member of this options struct");
    V T::*field = member;
    Key k;
    k.name = std::move(name);
    k.help = std::move(help);
    if constexpr (detail::IsOptional<V>::value) {
      using Inner = typename V::value_type;
      k.type = detail::KeyTypeOf<Inner>::value;
      k.nullable = true;
      const V& d = defaults_.*field;
      k.default_value = d ? Json(*d) : Json(nullptr);
    } else {
      k.type = detail::KeyTypeOf<V>::value;
      k.default_value = Json(defaults_.*field);
    }
    return add(std::move(k), field);
  }

  // A key the config must give (it has no default).
  template <class V, class C>
  Key& required(V C::*field, std::string name, std::string help) {
    Key& k = key(field, std::move(name), std::move(help));
    k.required = true;
    k.default_value = nullptr;
    return k;
  }

  // A string key taking one of `choices`.
  template <class C>
  Key& choice(std::string C::*field, std::string name, std::vector<std::string> choices, std::string help) {
    Key& k = key(field, std::move(name), std::move(help));
    k.choices = std::move(choices);
    return k;
  }

  const Schema& schema() const { return schema_; }

  // The struct for a resolved config (resolve_object with schema()).
  T read(const Options& resolved) const {
    T out{};
    out.path = resolved.path();
    for (const auto& assign : assign_) assign(out, resolved.json());
    return out;
  }

 private:
  template <class V>
  Key& add(Key k, V T::*field) {
    const std::string name = k.name;
    assign_.push_back([field, name](T& out, const Json& value) { out.*field = detail::field_value<V>(value.at(name)); });
    schema_.push_back(std::move(k));
    return schema_.back();  // valid until the next key is added
  }

  T defaults_{};
  Schema schema_;
  std::vector<std::function<void(T&, const Json&)>> assign_;
};

// The declaration of T's options (T::declare run once).
template <class T>
const Declare<T>& declaration() {
  static_assert(std::is_base_of_v<PluginOptions, T>, "an options struct derives from sgs::PluginOptions");
  static const Declare<T> d = [] {
    Declare<T> out;
    T::declare(out);
    return out;
  }();
  return d;
}

template <class T>
const Schema& schema_of() {
  return declaration<T>().schema();
}

template <class T>
T read_options(const Options& resolved) {
  return declaration<T>().read(resolved);
}

// For plugins without options of their own.
struct NoOptions : PluginOptions {
  static void declare(Declare<NoOptions>&) {}
};

namespace detail {

// Kind::Factory takes (const Options&, rest...); the plugin's factory takes
// (const T&, rest...).
template <class T, class R, class... Rest, class F>
std::function<R(const Options&, Rest...)> typed_factory(F f, std::function<R(const Options&, Rest...)>*) {
  return [f](const Options& o, Rest... rest) { return f(read_options<T>(o), std::forward<Rest>(rest)...); };
}

}  // namespace detail

}  // namespace sgs
