// The model registry table: lookup, unknown names, and that every row builds.
#include "models/registry.h"

#include <gtest/gtest.h>

#include <set>

namespace kiln::models {
namespace {

TEST(Registry, NamesAreUniqueAndFindable) {
  std::set<std::string_view> seen;
  ASSERT_FALSE(allModels().empty());
  for (const ModelInfo& m : allModels()) {
    EXPECT_TRUE(seen.insert(m.name).second) << "duplicate model " << m.name;
    EXPECT_EQ(findModel(m.name), &m);
    EXPECT_FALSE(m.summary.empty()) << m.name;
    EXPECT_NE(m.build, nullptr) << m.name;
    EXPECT_GT(m.defaultResolution, 0) << m.name;
  }
  EXPECT_EQ(findModel("resnet19"), nullptr);
  EXPECT_EQ(findModel(""), nullptr);
}

TEST(Registry, UnknownModelListsTheKnownOnes) {
  Expected<ir::Module> m = buildModel("resnet19", {});
  ASSERT_FALSE(m.isOk());
  EXPECT_TRUE(m.message().starts_with("unknown model 'resnet19' (known: resnet18, resnet34, "))
      << m.message();
}

TEST(Registry, EveryModelBuildsSmallWithStaticBatch) {
  for (const ModelInfo& info : allModels()) {
    SCOPED_TRACE(std::string(info.name));
    ModelConfig c = defaultConfig(info);
    c.batch = 3;
    c.numClasses = 7;
    Expected<ir::Module> m = info.build(c);
    ASSERT_TRUE(m.isOk()) << m.message();
    ASSERT_EQ(m->graph.outputs().size(), 1u);
    EXPECT_EQ(m->graph.outputs()[0]->type().shape, (ir::Shape{3, 7}));
    EXPECT_EQ(m->weights.size(), 0u);  // weights come from a store, not the builder
  }
}

TEST(Registry, CheckConfig) {
  EXPECT_TRUE(checkConfig({}, "m").isOk());
  EXPECT_TRUE(checkConfig({.batch = 1}, "m").isOk());
  EXPECT_EQ(checkConfig({.batch = -2}, "m").message(),
            "m: batch must be >= 1 or -1 (symbolic N), got -2");
  EXPECT_EQ(checkConfig({.resolution = 0}, "m").message(), "m: resolution must be >= 1, got 0");
  EXPECT_EQ(checkConfig({.inChannels = 0}, "m").message(), "m: inChannels must be >= 1, got 0");
}

}  // namespace
}  // namespace kiln::models
