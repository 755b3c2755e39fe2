// What every benchmark line records about the run besides its figures: when, which commit, which machine.
#pragma once
#include <string>

namespace eastrt {

std::string utc_timestamp();                               // "2026-12-01T10:00:00Z"
std::string git_commit(const std::string& directory = "."); // short hash, "" outside a checkout
std::string build_commit();  // the commit this binary was configured from ("abc1234", "abc1234+dirty", "")
std::string cpu_name();                                    // the first "model name" of /proc/cpuinfo
std::string load_average();                                // the 1-minute load average, as text

}  // namespace eastrt
