// docs/passes.md agrees with passes/passes.def: a section per pass with its summary, no
// section for a pass that does not exist, the default pipeline, and the manager's flags.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "passes/pass_manager.h"
#include "tests/passes/pass_test_util.h"

namespace kiln::passes {
namespace {

std::string doc() {
  return testing::readFile(std::filesystem::path(KILN_SOURCE_DIR) / "docs" / "passes.md");
}

TEST(PassesDoc, EveryPassHasASectionWithItsSummary) {
  const std::string text = doc();
  ASSERT_FALSE(text.empty()) << "docs/passes.md is missing";
  for (const PassInfo& p : allPasses()) {
    const std::string heading = fmt::format("\n## `{}`\n\n{}\n", p.name, p.summary);
    EXPECT_NE(text.find(heading), std::string::npos)
        << "docs/passes.md needs a section starting:" << heading;
  }
}

TEST(PassesDoc, NoSectionForAnUnknownPass) {
  const std::string text = doc();
  const std::string tag = "\n## `";
  for (size_t at = text.find(tag); at != std::string::npos; at = text.find(tag, at + 1)) {
    const size_t begin = at + tag.size();
    const std::string name = text.substr(begin, text.find('`', begin) - begin);
    EXPECT_NE(findPass(name), nullptr) << "docs/passes.md documents unknown pass " << name;
  }
}

TEST(PassesDoc, DefaultPipelineAndFlags) {
  const std::string text = doc();
  std::string pipeline;
  for (const std::string& n : defaultPipeline()) pipeline += (pipeline.empty() ? "" : ",") + n;
  EXPECT_NE(text.find("\n`" + pipeline + "`\n"), std::string::npos)
      << "docs/passes.md must show the default pipeline as `" << pipeline << "`";
  for (const char* flag : {"--passes=", "--print-after=", "--print-before=", "--print-after-all",
                           "--print-changed", "--dump-dir", "--time-passes", "--verify-each",
                           "--debug-locations"})
    EXPECT_NE(text.find(flag), std::string::npos) << "docs/passes.md does not mention " << flag;
}

}  // namespace
}  // namespace kiln::passes
