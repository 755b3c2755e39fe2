// The subcommands of the `eastrt` tool: each lives in its own tools/cmd_*.cpp and registers itself here.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace eastrt::tool {

struct Command {
  std::string summary;  // one line for `eastrt --help`
  std::function<int(const std::vector<std::string>& args)> run;  // args exclude the subcommand name
};

std::map<std::string, Command>& commands();

struct RegisterCommand {
  RegisterCommand(const std::string& name, std::string summary,
                  std::function<int(const std::vector<std::string>&)> run) {
    commands()[name] = Command{std::move(summary), std::move(run)};
  }
};

}  // namespace eastrt::tool
