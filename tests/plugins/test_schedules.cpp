#include <doctest/doctest.h>

#include <sgs/config.h>
#include <sgs/registry.h>
#include <sgs/schedule.h>

#include <cmath>

namespace {

std::unique_ptr<sgs::Schedule> make(const std::string& name, sgs::Json keys, sgs::ScheduleContext ctx) {
  const auto& info = sgs::Registry::global().get("schedule", name);
  keys["name"] = name;
  sgs::Options o(sgs::resolve_object(keys, "schedule", info.schema, {"name"}), "schedule");
  return sgs::Registry::global().factory<sgs::ScheduleKind>(name)(o, ctx);
}

}  // namespace

TEST_CASE("schedule cosine: warm-up, half-way and end") {
  auto s = make("cosine", {{"min_lr", 0.01}, {"warmup_epochs", 1}}, {0.1, 10, 11});
  CHECK(s->lr(0) == doctest::Approx(0.01));
  CHECK(s->lr(9) == doctest::Approx(0.1));
  CHECK(s->lr(10) == doctest::Approx(0.1));
  CHECK(s->lr(60) == doctest::Approx(0.01 + 0.09 * 0.5));
  CHECK(s->lr(110) == doctest::Approx(0.01));
}

TEST_CASE("schedule step: step_size and milestones") {
  auto s = make("step", {{"step_size", 2}, {"gamma", 0.5}}, {1.0, 3, 10});
  CHECK(s->lr(5) == doctest::Approx(1.0));
  CHECK(s->lr(6) == doctest::Approx(0.5));
  CHECK(s->lr(12) == doctest::Approx(0.25));
  auto m = make("step", {{"milestones", {1, 3}}}, {1.0, 3, 10});
  CHECK(m->lr(2) == doctest::Approx(1.0));
  CHECK(m->lr(3) == doctest::Approx(0.1));
  CHECK(m->lr(9) == doctest::Approx(0.01));
}

TEST_CASE("schedule constant") {
  auto s = make("constant", sgs::Json::object(), {0.3, 3, 10});
  CHECK(s->lr(0) == 0.3);
  CHECK(s->lr(29) == 0.3);
}
