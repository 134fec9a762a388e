// kiln CLI entry point: one subcommand per tools/cmd_*.cpp, parsed with CLI11.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "tools/commands.h"
#include "tools/common.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln — a deep-learning compiler and runtime", "kiln"};
  app.set_version_flag("--version", std::string("kiln 0.1.0"));
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, kiln::tools::Action>> actions;
  for (const kiln::tools::Command& c : kiln::tools::commands()) {
    CLI::App* sub = app.add_subcommand(std::string(c.name), std::string(c.summary));
    actions.emplace_back(sub, c.registerOptions(*sub));
  }
  // Compiler-style `-O2` is not a flag name CLI11 accepts; spell it `--O2` for the parser.
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i)
    args.emplace_back(std::string_view(argv[i]) == "-O2" ? "--O2" : argv[i]);
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = "kiln";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    fmt::print(stderr, "error: {}: {}\n", where, e.what());
    fmt::print(stderr, "run '{} --help' for usage\n", where);
    return 2;
  }
  for (auto& [sub, action] : actions) {
    if (!sub->parsed()) continue;
    kiln::Status st = action();
    if (!st.isOk()) {
      std::fflush(stdout);
      fmt::print(stderr, "error: {}\n", st.message());
      return 1;
    }
  }
  return 0;
}
