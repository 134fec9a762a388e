// tests/python_util.h — running the python that has torch (KILN_PYTHON) from a test.
#pragma once

#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace kiln::testing {

/// Runs a shell command; returns its exit status and stdout+stderr.
inline std::pair<int, std::string> runCommand(const std::string& cmd) {
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  return {::pclose(pipe), out};
}

/// Empty when KILN_PYTHON has every module of `modules`; otherwise why not
/// ("/usr/bin/python3 cannot import torch and numpy"). Looks the modules up without importing
/// them (importing torch costs a second of CPU, and most tests call this): a module that is
/// found but fails to import fails the test that uses it instead of skipping it.
inline std::string cannotImport(std::initializer_list<std::string_view> modules) {
  const std::string py = KILN_PYTHON;
  std::string quoted, names;
  size_t i = 0;
  for (std::string_view m : modules) {
    quoted += fmt::format("{}\"{}\"", i ? ", " : "", m);
    names += fmt::format("{}{}", i == 0 ? "" : i + 1 == modules.size() ? " and " : ", ", m);
    ++i;
  }
  const std::string check = fmt::format(
      "{} -c 'import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in [{}]) "
      "else 1)'",
      py, quoted);
  if (runCommand(check).first == 0) return "";
  return fmt::format("{} cannot import {}", py, names);
}

}  // namespace kiln::testing
