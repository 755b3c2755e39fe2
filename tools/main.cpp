// The `eastrt` command: dispatches to the subcommands of tools/cmd_*.cpp; every error ends in one clear
// line on stderr and a non-zero exit.
#include <cstdio>
#include <iostream>

#include "command.h"
#include "eastrt/error.h"
#include "eastrt/run_record.h"

namespace eastrt::tool {
std::map<std::string, Command>& commands() {
  static std::map<std::string, Command> table;
  return table;
}
}  // namespace eastrt::tool

namespace {
void print_usage() {
  std::cout << "eastrt " << EASTRT_VERSION
            << " — EAST scene-text detection: import, build, run, detect, evaluate\n\n"
               "usage: eastrt <command> [options]   (eastrt <command> --help for its options)\n\ncommands:\n";
  for (const auto& [name, command] : eastrt::tool::commands())
    std::printf("  %-10s %s\n", name.c_str(), command.summary.c_str());
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  if (std::string(argv[1]) == "--version") {
    const std::string commit = eastrt::build_commit();
    std::cout << "eastrt " << EASTRT_VERSION << (commit.empty() ? "" : " (commit " + commit + ")") << "\n";
    return 0;
  }
  auto& table = eastrt::tool::commands();
  auto it = table.find(argv[1]);
  if (it == table.end()) {
    std::cerr << "eastrt: unknown command '" << argv[1] << "' (eastrt --help lists them)\n";
    return 2;
  }
  try {
    return it->second.run(std::vector<std::string>(argv + 2, argv + argc));
  } catch (const eastrt::Error& e) {
    std::cerr << "eastrt " << argv[1] << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "eastrt " << argv[1] << ": " << e.what() << "\n";
    return 1;
  }
}
