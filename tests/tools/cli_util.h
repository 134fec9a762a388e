// tests/tools/cli_util.h — running the kiln binary from a test: stdout and stderr captured
// separately, a per-test scratch folder, and the one-error-line check every CLI error meets.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace kiln::testing {

struct CliResult {
  int exitCode;
  std::string out;  // stdout
  std::string err;  // stderr
};

/// Runs `ENV kiln ARGS` through the shell (`env` is a prefix such as "KILN_PYTHON=/x"),
/// capturing stdout and stderr separately.
inline CliResult kiln(const std::string& args, const std::string& stdinText = "",
                      const std::string& env = "") {
  static int counter = 0;
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kiln_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string id = std::to_string(counter++);
  const fs::path outFile = dir / (id + ".out"), errFile = dir / (id + ".err"),
                 inFile = dir / (id + ".in");
  std::ofstream(inFile) << stdinText;
  const std::string cmd = (env.empty() ? "" : env + " ") + std::string(KILN_BINARY) + " " + args +
                          " <" + inFile.string() + " >" + outFile.string() + " 2>" +
                          errFile.string();
  const int status = std::system(cmd.c_str());
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  return CliResult{WIFEXITED(status) ? WEXITSTATUS(status) : 128, slurp(outFile), slurp(errFile)};
}

/// One error line, starting with "error: ", containing `needle`, and no sanitizer report.
inline void expectOneError(const CliResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exitCode, code) << r.err;
  ASSERT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.err.find("AddressSanitizer"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("runtime error"), std::string::npos) << r.err;
}

/// A fresh scratch folder per test, removed afterwards.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kiln_cli_case_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  std::filesystem::path dir_;
};

/// A linear + relu graph on f32[N,4] with two parameters.
inline constexpr const char* kTinyGraph =
    "graph @tiny {\n"
    "  input %x : f32[N,4]{nc}\n"
    "  param %fc.weight : f32[2,4]{oi}\n"
    "  param %fc.bias : f32[2]{x}\n"
    "  %0 = linear(%x, %fc.weight, %fc.bias) : f32[N,2]{nc}\n"
    "  %1 = relu(%0) : f32[N,2]{nc}\n"
    "  output %1\n"
    "}\n";

}  // namespace kiln::testing
