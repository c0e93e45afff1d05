#include <doctest/doctest.h>

#include <sgs/errors.h>
#include <sgs/options.h>
#include <sgs/schema.h>

using sgs::Json;
using sgs::Key;

namespace {

// Declared once (sgs/options.h): the schema and the typed read below.
struct TestOptions : sgs::PluginOptions {
  double lr = 0.1, momentum = 0.9;
  int64_t epochs = 3;
  bool nesterov = false;
  std::string mode = "a", root;
  std::vector<int64_t> sizes{1, 2};
  std::optional<double> limit;
  static void declare(sgs::Declare<TestOptions>& d) {
    d.key(&TestOptions::lr, "lr", "learning rate").gt(0);
    d.key(&TestOptions::momentum, "momentum", "momentum").ge(0).lt(1);
    d.key(&TestOptions::epochs, "epochs", "epochs").ge(1);
    d.key(&TestOptions::nesterov, "nesterov", "nesterov");
    d.choice(&TestOptions::mode, "mode", {"alpha", "beta"}, "mode");
    d.key(&TestOptions::sizes, "sizes", "sizes").ge(0);
    d.required(&TestOptions::root, "root", "root").specific_to_run();
    d.key(&TestOptions::limit, "limit", "an optional limit");
  }
};

const sgs::Schema& schema() { return sgs::schema_of<TestOptions>(); }

std::string schema_error_of(const Json& v) {
  try {
    sgs::resolve_object(v, "opt", schema());
  } catch (const sgs::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("schema: defaults are filled in and ints widen to floats") {
  Json out = sgs::resolve_object(Json{{"root", "/x"}, {"lr", 1}, {"mode", "beta"}}, "opt", schema());
  CHECK(out["lr"].is_number_float());
  CHECK(out["lr"].get<double>() == 1.0);
  CHECK(out["momentum"].get<double>() == doctest::Approx(0.9));
  CHECK(out["epochs"].get<int64_t>() == 3);
  CHECK(out["sizes"] == Json::array({1, 2}));
}

TEST_CASE("schema: every kind of mistake names the path") {
  CHECK(schema_error_of(Json{{"root", "/x"}, {"momentun", 0.9}}) ==
        "opt.momentun: unknown key; did you mean 'momentum'? (known: lr, momentum, epochs, nesterov, mode, sizes, root, limit)");
  CHECK(schema_error_of(Json{{"root", "/x"}, {"lr", "fast"}}) == "opt.lr: expected a number, got a string \"fast\"");
  CHECK(schema_error_of(Json{{"root", "/x"}, {"lr", -0.1}}) == "opt.lr: must be > 0, got -0.1");
  CHECK(schema_error_of(Json{{"root", "/x"}, {"momentum", 1.0}}) == "opt.momentum: must be < 1, got 1.0");
  CHECK(schema_error_of(Json{{"root", "/x"}, {"epochs", 2.5}}) == "opt.epochs: expected an integer, got a number 2.5");
  CHECK(schema_error_of(Json{{"root", "/x"}, {"nesterov", 1}}) == "opt.nesterov: expected a bool (true/false), got an integer 1");
  CHECK(schema_error_of(Json{{"root", "/x"}, {"mode", "alfa"}}) ==
        "opt.mode: expected one of {alpha, beta}, got 'alfa'; did you mean 'alpha'?");
  CHECK(schema_error_of(Json{{"root", "/x"}, {"sizes", Json::array({1, -2})}}) == "opt.sizes[1]: must be >= 0, got -2");
  CHECK(schema_error_of(Json::object()) == "opt.root: missing required key (string: root)");
  CHECK(schema_error_of(Json::array()) == "opt: expected an object, got a list");
}

TEST_CASE("schema: parse_typed types command-line text by the key") {
  CHECK(sgs::parse_typed("0.5", "opt.lr", schema()[0]).get<double>() == 0.5);
  CHECK(sgs::parse_typed("true", "opt.nesterov", schema()[3]).get<bool>());
  CHECK(sgs::parse_typed("[3,4]", "opt.sizes", schema()[5]) == Json::array({3, 4}));
  CHECK(sgs::parse_typed("beta", "opt.mode", schema()[4]) == "beta");
  CHECK_THROWS_WITH_AS(sgs::parse_typed("abc", "opt.lr", schema()[0]),
                       "opt.lr: expected float > 0, got 'abc'", sgs::ConfigError);
}

TEST_CASE("close matches rank near misspellings first") {
  auto m = sgs::close_matches("mutal_information", {"none", "mutual_information", "autocorrelation"});
  REQUIRE(m.size() == 1);
  CHECK(m[0] == "mutual_information");
  CHECK(sgs::did_you_mean("zzz", {"sgd", "adam"}).empty());
}

TEST_CASE("options: one declaration gives the schema (types, defaults, required) and the typed values") {
  const auto& s = schema();
  REQUIRE(s.size() == 8);
  CHECK(s[0].type == sgs::KeyType::Float);
  CHECK(s[0].default_value == 0.1);
  CHECK(s[2].type == sgs::KeyType::Int);
  CHECK(s[5].type == sgs::KeyType::IntList);
  CHECK(s[5].default_value == Json::array({1, 2}));
  CHECK(s[6].required);
  CHECK(s[6].default_value.is_null());  // a required key has no default to discard
  CHECK(s[6].run_specific);
  CHECK(s[7].nullable);
  Json resolved = sgs::resolve_object(Json{{"root", "/x"}, {"epochs", 7}, {"sizes", {4}}, {"limit", 2.5}}, "opt", s);
  TestOptions o = sgs::read_options<TestOptions>(sgs::Options(resolved, "opt"));
  CHECK(o.path == "opt");
  CHECK(o.where("lr") == "opt.lr");
  CHECK(o.root == "/x");
  CHECK(o.epochs == 7);
  CHECK(o.lr == 0.1);
  CHECK(o.sizes == std::vector<int64_t>{4});
  CHECK(o.limit == 2.5);
  resolved = sgs::resolve_object(Json{{"root", "/x"}}, "opt", s);
  CHECK_FALSE(sgs::read_options<TestOptions>(sgs::Options(resolved, "opt")).limit.has_value());
}

TEST_CASE("options: renamed keys are refused with their new name, sized lists are checked") {
  struct Betas : sgs::PluginOptions {
    std::vector<double> betas{0.9, 0.999};
    static void declare(sgs::Declare<Betas>& d) {
      d.key(&Betas::betas, "betas", "moment decays").ge(0).lt(1).exactly(2).renamed_from({"beta1", "beta2"});
    }
  };
  const auto& s = sgs::schema_of<Betas>();
  auto error = [&](const Json& v) {
    try {
      sgs::resolve_object(v, "optimizer", s);
    } catch (const sgs::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error(Json{{"beta1", 0.8}}) ==
        "optimizer.beta1: no longer a key: give betas instead (2-element float list >= 0 < 1: moment decays)");
  CHECK(error(Json{{"betas", {0.9}}}) == "optimizer.betas: expected 2 elements, got 1 [0.9]");
  CHECK(error(Json{{"betas", {0.8, 0.99}}}).empty());
}
