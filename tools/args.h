// A small command-line parser shared by the subcommands: declared flags only, unknown ones are an error.
#pragma once
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace eastrt::tool {

class Args {
 public:
  // `usage` is printed for --help; `valued` flags take a value (--out DIR or --out=DIR), `switches` do not.
  Args(std::string usage, std::set<std::string> valued, std::set<std::string> switches);

  // Parses; throws eastrt::Error on an unknown flag or a missing value. Returns false when --help was
  // given (the usage has then been printed) and the command should exit 0.
  bool parse(const std::vector<std::string>& args);

  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  int get_int(const std::string& flag, int fallback) const;
  double get_double(const std::string& flag, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::string usage_;
  std::set<std::string> valued_, switches_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// "a,b,,c" → {"a", "b", "c"}: the comma-separated lists flags take (--outputs A,B).
std::vector<std::string> split_list(const std::string& text);

// The p-quantile (0 ≤ p ≤ 1) of the values by the nearest-rank rule; 0 for none. p = 0 is the smallest.
inline double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(values.size())));
  return values[std::min(std::max<size_t>(i, 1), values.size()) - 1];
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace eastrt::tool
