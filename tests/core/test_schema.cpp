#include <doctest/doctest.h>

#include <sgs/errors.h>
#include <sgs/schema.h>

using sgs::Json;
using sgs::Key;

namespace {

const sgs::Schema& schema() {
  static const sgs::Schema s = {
      Key::real("lr", 0.1, "learning rate").gt(0),
      Key::real("momentum", 0.9, "momentum").ge(0).lt(1),
      Key::integer("epochs", 3, "epochs").ge(1),
      Key::boolean("nesterov", false, "nesterov"),
      Key::choice("mode", "a", {"alpha", "beta"}, "mode"),
      Key::list("sizes", sgs::KeyType::IntList, Json::array({1, 2}), "sizes").ge(0),
      Key::string("root", "", "root").require(),
  };
  return s;
}

std::string error_of(const Json& v) {
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
  CHECK(error_of(Json{{"root", "/x"}, {"momentun", 0.9}}) ==
        "opt.momentun: unknown key; did you mean 'momentum'? (known: lr, momentum, epochs, nesterov, mode, sizes, root)");
  CHECK(error_of(Json{{"root", "/x"}, {"lr", "fast"}}) == "opt.lr: expected a number, got a string \"fast\"");
  CHECK(error_of(Json{{"root", "/x"}, {"lr", -0.1}}) == "opt.lr: must be > 0, got -0.1");
  CHECK(error_of(Json{{"root", "/x"}, {"momentum", 1.0}}) == "opt.momentum: must be < 1, got 1.0");
  CHECK(error_of(Json{{"root", "/x"}, {"epochs", 2.5}}) == "opt.epochs: expected an integer, got a number 2.5");
  CHECK(error_of(Json{{"root", "/x"}, {"nesterov", 1}}) == "opt.nesterov: expected a bool (true/false), got an integer 1");
  CHECK(error_of(Json{{"root", "/x"}, {"mode", "alfa"}}) ==
        "opt.mode: expected one of {alpha, beta}, got 'alfa'; did you mean 'alpha'?");
  CHECK(error_of(Json{{"root", "/x"}, {"sizes", Json::array({1, -2})}}) == "opt.sizes[1]: must be >= 0, got -2");
  CHECK(error_of(Json::object()) == "opt.root: missing required key (string: root)");
  CHECK(error_of(Json::array()) == "opt: expected an object, got a list");
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
