// Run records for benchmark lines: timestamp, commit, CPU and load, read from the system.
#include "eastrt/run_record.h"

#include <cstdio>
#include <ctime>
#include <fstream>

namespace eastrt {

namespace {
std::string first_line_of_command(const std::string& command) {
  std::string out;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[256];
    if (fgets(buffer, sizeof buffer, pipe)) out = buffer;
    pclose(pipe);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}
}  // namespace

std::string utc_timestamp() {
  std::time_t t = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

std::string git_commit(const std::string& directory) {
  return first_line_of_command("git -C '" + directory + "' rev-parse --short HEAD 2>/dev/null");
}

std::string build_commit() {
#ifdef EASTRT_BUILD_COMMIT
  return EASTRT_BUILD_COMMIT;
#else
  return "";
#endif
}

std::string cpu_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return line.substr(line.find(':') + 2);
  return "";
}

std::string load_average() {
  std::ifstream loadavg("/proc/loadavg");
  std::string first;
  loadavg >> first;
  return first;
}

}  // namespace eastrt
