// Learning-rate schedules vs PyTorch: LambdaLR with the same closed forms (equal to the last
// ulp) and torch's own StepLR / MultiStepLR / CosineAnnealingLR / LinearLR.
#include "runtime/schedule.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "tests/python_util.h"

namespace kiln::runtime {
namespace {

struct Case {
  const char* name;
  ScheduleOptions o;
  int64_t iters;
};

std::vector<Case> cases() {
  auto mk = [](ScheduleKind k, double base, int64_t warmup, int64_t total) {
    ScheduleOptions o;
    o.kind = k;
    o.baseLr = base;
    o.warmup = warmup;
    o.total = total;
    return o;
  };
  std::vector<Case> out;
  out.push_back({"cosine", mk(ScheduleKind::Cosine, 0.1, 0, 469), 469});
  out.push_back({"cosine_warmup", mk(ScheduleKind::Cosine, 0.4, 7, 60), 66});  // past the end: 0
  ScheduleOptions step = mk(ScheduleKind::Step, 0.1, 0, 50);
  step.stepSize = 7;
  step.gamma = 0.5;
  out.push_back({"step", step, 50});
  step.warmup = 3;
  out.push_back({"step_warmup", step, 50});
  ScheduleOptions ms = mk(ScheduleKind::MultiStep, 0.05, 0, 40);
  ms.milestones = {5, 12, 12, 30};
  ms.gamma = 0.1;
  out.push_back({"multistep", ms, 40});
  out.push_back({"constant_warmup", mk(ScheduleKind::Constant, 0.1, 9, 30), 30});
  return out;
}

/// |a - b| within one unit in the last place of b.
bool withinUlp(double a, double b) {
  return a == b || std::nextafter(b, a) == a;
}

TEST(Schedule, MatchesTorch) {
  const std::string why = testing::cannotImport({"torch"});
  if (!why.empty()) GTEST_SKIP() << why;
  const std::vector<Case> all = cases();
  nlohmann::json specs = nlohmann::json::array();
  for (const Case& c : all) {
    const char* kinds[] = {"constant", "step", "multistep", "cosine"};
    EXPECT_EQ(scheduleName(c.o.kind), kinds[static_cast<int>(c.o.kind)]);
    specs.push_back({{"kind", kinds[static_cast<int>(c.o.kind)]},
                     {"base", c.o.baseLr},
                     {"warmup", c.o.warmup},
                     {"total", c.o.total},
                     {"step", c.o.stepSize},
                     {"gamma", c.o.gamma},
                     {"milestones", c.o.milestones},
                     {"iters", c.iters}});
  }
  const auto [rc, out] = testing::runCommand(fmt::format(
      "{} {}/tests/runtime/torch_schedule.py '{}'", KILN_PYTHON, KILN_SOURCE_DIR, specs.dump()));
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json results = nlohmann::json::parse(out.substr(out.find('[')));
  ASSERT_EQ(results.size(), all.size());
  for (size_t k = 0; k < all.size(); ++k) {
    const Case& c = all[k];
    const nlohmann::json& r = results[k];
    SCOPED_TRACE(c.name);
    const std::vector<double> lambda = r["lambda"].get<std::vector<double>>();
    ASSERT_EQ(lambda.size(), static_cast<size_t>(c.iters));
    int exact = 0;
    for (int64_t it = 0; it < c.iters; ++it) {
      const double ours = learningRate(c.o, it);
      EXPECT_TRUE(withinUlp(ours, lambda[static_cast<size_t>(it)]))
          << "iteration " << it << ": "
          << fmt::format("{:.17g} vs torch {:.17g}", ours, lambda[static_cast<size_t>(it)]);
      exact += ours == lambda[static_cast<size_t>(it)];
    }
    EXPECT_EQ(exact, c.iters) << "not bit-exact everywhere (but within 1 ulp)";
    if (r["native"].is_null()) continue;
    // torch's own schedulers compute some values recursively: equal up to rounding.
    const std::vector<double> native = r["native"].get<std::vector<double>>();
    ASSERT_EQ(native.size(), static_cast<size_t>(c.iters));
    for (int64_t it = 0; it < c.iters; ++it)
      EXPECT_NEAR(learningRate(c.o, it), native[static_cast<size_t>(it)], 1e-12 * c.o.baseLr)
          << "native scheduler, iteration " << it;
  }
}

TEST(Schedule, Shapes) {
  ScheduleOptions o;
  o.kind = ScheduleKind::Cosine;
  o.baseLr = 0.1;
  o.total = 100;
  o.warmup = 10;
  EXPECT_DOUBLE_EQ(learningRate(o, 0), 0.01);     // first warmup step: base / warmup
  EXPECT_DOUBLE_EQ(learningRate(o, 9), 0.1);      // last warmup step reaches base
  EXPECT_DOUBLE_EQ(learningRate(o, 10), 0.1);     // cosine starts at base
  EXPECT_NEAR(learningRate(o, 55), 0.05, 1e-15);  // half way
  EXPECT_EQ(learningRate(o, 100), 0.0);
  o.kind = ScheduleKind::MultiStep;
  o.warmup = 0;
  o.milestones = {3, 6};
  EXPECT_DOUBLE_EQ(learningRate(o, 2), 0.1);
  EXPECT_DOUBLE_EQ(learningRate(o, 3), 0.1 * 0.1);
  EXPECT_DOUBLE_EQ(learningRate(o, 6), 0.1 * 0.1 * 0.1);
  EXPECT_EQ(parseSchedule("cosine"), ScheduleKind::Cosine);
  EXPECT_EQ(parseSchedule("multistep"), ScheduleKind::MultiStep);
  EXPECT_FALSE(parseSchedule("linear").has_value());
}

}  // namespace
}  // namespace kiln::runtime
