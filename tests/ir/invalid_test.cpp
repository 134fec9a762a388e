// Golden parse errors: each tests/ir/invalid/NAME.kir must fail with exactly the message in
// NAME.expected.err (file:line:col included). KILN_UPDATE_GOLDEN=1 rewrites the .err files
// for review.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ir/parser.h"

namespace kiln::ir {
namespace {

namespace fs = std::filesystem;

fs::path invalidDir() {
  return fs::path(KILN_SOURCE_DIR) / "tests" / "ir" / "invalid";
}

std::vector<std::string> invalidCases() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(invalidDir(), ec))
    if (entry.path().extension() == ".kir") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trimTrailing(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

class InvalidKir : public ::testing::TestWithParam<std::string> {};

TEST_P(InvalidKir, FailsWithTheExpectedMessage) {
  const std::string name = GetParam();
  const fs::path errPath = invalidDir() / (name + ".expected.err");
  const std::string text = readFile(invalidDir() / (name + ".kir"));
  Expected<Graph> g = parseGraph(text, name + ".kir");
  ASSERT_FALSE(g.isOk()) << name << ".kir parsed without error";
  if (const char* update = std::getenv("KILN_UPDATE_GOLDEN");
      update && std::string(update) == "1") {
    std::ofstream(errPath, std::ios::binary) << g.message() << "\n";
    return;
  }
  ASSERT_TRUE(fs::exists(errPath)) << "missing " << errPath;
  EXPECT_EQ(g.message(), trimTrailing(readFile(errPath)));
}

INSTANTIATE_TEST_SUITE_P(Golden, InvalidKir, ::testing::ValuesIn(invalidCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(InvalidKirFolder, HasTheRequiredCases) {
  std::vector<std::string> cases = invalidCases();
  for (const char* required :
       {"truncated", "unknown_op", "undefined_value", "type_mismatch", "redefinition", "bad_attr",
        "unknown_attr", "bad_dtype", "bad_layout", "wrong_arity", "missing_type"})
    EXPECT_NE(std::find(cases.begin(), cases.end(), required), cases.end()) << required;
}

}  // namespace
}  // namespace kiln::ir
