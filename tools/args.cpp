// Implementation of the shared command-line parser.
#include "args.h"

#include <iostream>
#include <sstream>

#include "eastrt/error.h"

namespace eastrt::tool {

Args::Args(std::string usage, std::set<std::string> valued, std::set<std::string> switches)
    : usage_(std::move(usage)), valued_(std::move(valued)), switches_(std::move(switches)) {}

bool Args::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << usage_;
      return false;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional_.push_back(arg);
      continue;
    }
    std::string flag = arg, value;
    bool inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    if (switches_.count(flag)) {
      EASTRT_CHECK(!inline_value, "flag ", flag, " takes no value");
      values_[flag] = "1";
    } else if (valued_.count(flag)) {
      if (!inline_value) {
        EASTRT_CHECK(i + 1 < args.size(), "flag ", flag, " needs a value");
        value = args[++i];
      }
      values_[flag] = value;
    } else {
      throw_error("unknown flag '", flag, "' (--help lists the flags)");
    }
  }
  return true;
}

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

int Args::get_int(const std::string& flag, int fallback) const {
  if (!has(flag)) return fallback;
  const std::string& text = values_.at(flag);
  size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  EASTRT_CHECK(used == text.size() && !text.empty(), "flag ", flag, " expects an integer, got '", text, "'");
  return value;
}

double Args::get_double(const std::string& flag, double fallback) const {
  if (!has(flag)) return fallback;
  const std::string& text = values_.at(flag);
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  EASTRT_CHECK(used == text.size() && !text.empty(), "flag ", flag, " expects a number, got '", text, "'");
  return value;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

}  // namespace eastrt::tool
