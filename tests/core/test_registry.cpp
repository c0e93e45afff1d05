#include <doctest/doctest.h>

#include <sgs/errors.h>
#include <sgs/registry.h>
#include <sgs/schedule.h>

#include <algorithm>

TEST_CASE("registry: every plugin kind holds the expected names") {
  const auto& reg = sgs::Registry::global();
  auto has = [&](const char* kind, std::vector<std::string> expected) {
    auto names = reg.names(kind);
    for (const auto& e : expected) {
      INFO(kind << " " << e);
      CHECK(std::find(names.begin(), names.end(), e) != names.end());
    }
  };
  has("schedule", {"constant", "cosine", "step"});
}

TEST_CASE("registry: unknown names list close matches and the known ones") {
  const auto& reg = sgs::Registry::global();
  CHECK_THROWS_WITH_AS(reg.get("schedule", "cosin"),
                       "unknown schedule 'cosin'; did you mean 'cosine'? (known: constant, cosine, step)",
                       sgs::ConfigError);
}

TEST_CASE("registry: a duplicate names both origins") {
  sgs::Registry reg;
  sgs::ScheduleKind::Factory f = [](const sgs::Options&, const sgs::ScheduleContext&) {
    return std::unique_ptr<sgs::Schedule>();
  };
  reg.add({"schedule", "x", "first", {}, f, "a.cpp"});
  CHECK_THROWS_WITH_AS(reg.add({"schedule", "x", "second", {}, f, "b.cpp"}),
                       "registry: duplicate schedule 'x' registered by b.cpp and by a.cpp", std::logic_error);
}

TEST_CASE("registry: a factory of the wrong type is refused by name") {
  sgs::Registry reg;
  reg.add({"schedule", "bad", "wrong factory", {}, std::any(42), "bad.cpp"});
  CHECK_THROWS_AS(reg.factory<sgs::ScheduleKind>("bad"), std::logic_error);
}
