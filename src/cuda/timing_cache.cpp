// The tactic timing cache file (see timing_cache.h): JSON with a format name and version, then one entry
// per (device, convolution signature).
#include "cuda/timing_cache.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "eastrt/error.h"

namespace eastrt::gpu {
namespace {

constexpr const char* kFormatName = "eastrt timing cache";

nlohmann::json tactic_json(const ConvTactic& t) {
  nlohmann::json j = {{"kind", static_cast<int>(t.kind)}, {"algo", t.algo}, {"math", t.math},
                      {"workspace", t.workspace}, {"ms", t.ms}};
  if (has_lt_algo(t.kind)) {
    const ConvTactic::LtAlgo& lt = t.lt;
    j["cublaslt"] = {{"data", lt.data}, {"version", lt.version}, {"id", lt.id}, {"tile", lt.tile},
                     {"stages", lt.stages}, {"split_k", lt.split_k}};
  }
  if (has_graph_config(t.kind)) j["graph"] = {{"version", t.graph.version}, {"knobs", t.graph.knobs}};
  if (t.kind == ConvTactic::Kind::kQuant) j["variant"] = t.variant_name;
  return j;
}

// An integer within [lo, hi]: a float or an integer beyond the range is refused, not converted.
bool integer_in(const nlohmann::json& v, int64_t lo, int64_t hi, int64_t* out) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) return false;
    *out = static_cast<int64_t>(u);
  } else {
    *out = v.get<int64_t>();
  }
  return *out >= lo && *out <= hi;
}

ConvTactic tactic_from_json(const nlohmann::json& j, const std::string& path, size_t index) {
  constexpr int64_t kInt32Min = INT32_MIN, kInt32Max = INT32_MAX;
  auto field = [&](const char* name, int64_t lo, int64_t hi) {
    int64_t v = 0;
    EASTRT_CHECK(j.is_object() && j.contains(name) && integer_in(j.at(name), lo, hi, &v), "timing cache ", path,
                 ": entry ", index, " has a tactic without an integer '", name, "' in ", lo, "..", hi);
    return v;
  };
  ConvTactic t;
  const int kind = static_cast<int>(field("kind", 0, 255));
  // (kSpaceToDepthMaxPool is chosen after the cache, never kept in it.)
  EASTRT_CHECK((kind >= static_cast<int>(ConvTactic::Kind::kCudnnFused) &&
                kind <= static_cast<int>(ConvTactic::Kind::kCudnnGraphSplit)) ||
                   (kind <= static_cast<int>(ConvTactic::Kind::kQuantCublasLt) &&
                    is_quant_conv(static_cast<ConvTactic::Kind>(kind))),
               "timing cache ", path, ": entry ", index, " has a tactic of unknown kind ", kind);
  t.kind = static_cast<ConvTactic::Kind>(kind);
  t.algo = static_cast<int>(field("algo", kInt32Min, kInt32Max));
  t.math = static_cast<int>(field("math", kInt32Min, kInt32Max));
  t.workspace = field("workspace", INT64_MIN, INT64_MAX);
  EASTRT_CHECK(j.contains("ms") && j.at("ms").is_number(), "timing cache ", path, ": entry ", index,
               " has a tactic without a numeric 'ms'");
  t.ms = j.at("ms").get<double>();
  EASTRT_CHECK(t.algo >= 0 && t.workspace >= 0 && t.ms >= 0, "timing cache ", path, ": entry ", index,
               " has a tactic with a negative algorithm, workspace or time");
  if (has_lt_algo(t.kind)) {
    // The algorithm's 64 bytes as eight unsigned integers, and what they decode to.
    const bool whole = j.contains("cublaslt") && j.at("cublaslt").is_object();
    const nlohmann::json& lt = whole ? j.at("cublaslt") : j;
    auto number = [&](const char* name, int64_t lo, int64_t hi) {
      int64_t v = 0;
      EASTRT_CHECK(whole && lt.contains(name) && integer_in(lt.at(name), lo, hi, &v), "timing cache ", path, ": entry ",
                   index, " has a cuBLASLt tactic without an integer 'cublaslt.", name, "' in ", lo, "..", hi);
      return v;
    };
    EASTRT_CHECK(whole && lt.contains("data") && lt.at("data").is_array() && lt.at("data").size() == t.lt.data.size(),
                 "timing cache ", path, ": entry ", index, " has a cuBLASLt tactic without its 8 'cublaslt.data' words");
    for (size_t i = 0; i < t.lt.data.size(); ++i) {
      EASTRT_CHECK(lt.at("data")[i].is_number_unsigned() || lt.at("data")[i].is_number_integer(), "timing cache ", path,
                   ": entry ", index, " has a cuBLASLt algorithm word that is not an integer");
      t.lt.data[i] = lt.at("data")[i].get<uint64_t>();
    }
    t.lt.version = number("version", INT64_MIN, INT64_MAX);
    t.lt.id = static_cast<int32_t>(number("id", kInt32Min, kInt32Max));
    t.lt.tile = static_cast<int32_t>(number("tile", kInt32Min, kInt32Max));
    t.lt.stages = static_cast<int32_t>(number("stages", kInt32Min, kInt32Max));
    t.lt.split_k = static_cast<int32_t>(number("split_k", kInt32Min, kInt32Max));
  }
  if (has_graph_config(t.kind)) {
    // The cuDNN version and the knob choices as [type, value] pairs.
    const bool whole = j.contains("graph") && j.at("graph").is_object() && j.at("graph").contains("version") &&
                       j.at("graph").at("version").is_number_integer() && j.at("graph").contains("knobs") &&
                       j.at("graph").at("knobs").is_array();
    EASTRT_CHECK(whole, "timing cache ", path, ": entry ", index,
                 " has a cuDNN graph tactic without its 'graph.version' and 'graph.knobs'");
    t.graph.version = j.at("graph").at("version").get<int64_t>();
    for (const nlohmann::json& knob : j.at("graph").at("knobs")) {
      int64_t type = 0, value = 0;
      EASTRT_CHECK(knob.is_array() && knob.size() == 2 && integer_in(knob[0], kInt32Min, kInt32Max, &type) &&
                       integer_in(knob[1], INT64_MIN, INT64_MAX, &value),
                   "timing cache ", path, ": entry ", index, " has a cuDNN graph knob that is not an integer pair");
      t.graph.knobs.emplace_back(static_cast<int32_t>(type), value);
    }
  }
  if (t.kind == ConvTactic::Kind::kQuant) {
    EASTRT_CHECK(j.contains("variant") && j.at("variant").is_string(), "timing cache ", path, ": entry ", index,
                 " has an 8-bit convolution tactic without its 'variant' name");
    t.variant_name = j.at("variant").get<std::string>();
  }
  return t;
}

}  // namespace

std::string timing_device(const std::string& gpu_name, int major, int minor, long cudnn_version,
                          const std::string& eastrt_version) {
  std::ostringstream out;
  out << gpu_name << " sm_" << major << minor << " cudnn " << cudnn_version << " eastrt " << eastrt_version
      << " candidates " << kCandidateRevision;
  return out.str();
}

TimingCache TimingCache::load(const std::string& path) {
  TimingCache cache;
  // Absent is fine (the first build makes it); present but unreadable is the user's to fix.
  std::error_code ignored;
  if (!std::filesystem::exists(path, ignored)) return cache;
  std::ifstream in(path, std::ios::binary);
  EASTRT_CHECK(in.good(), "timing cache ", path, " exists but cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw_error("timing cache ", path, " is not valid JSON (", e.what(), "): delete it to time the tactics again");
  }
  EASTRT_CHECK(j.is_object() && j.value("format", "") == kFormatName, "timing cache ", path,
               " is not an eastrt timing cache (no \"format\": \"", kFormatName, "\")");
  EASTRT_CHECK(j.contains("version") && j.at("version").is_number_integer(), "timing cache ", path,
               " has no format version");
  const int version = j.at("version").get<int>();
  EASTRT_CHECK(version == kFormatVersion, "timing cache ", path, " has format version ", version, "; this eastrt reads ",
               kFormatVersion, ": delete it to time the tactics again");
  EASTRT_CHECK(j.contains("entries") && j.at("entries").is_array(), "timing cache ", path, " has no \"entries\" list");
  size_t index = 0;
  for (const nlohmann::json& e : j.at("entries")) {
    EASTRT_CHECK(e.is_object() && e.contains("device") && e.at("device").is_string() && e.contains("layer") &&
                     e.at("layer").is_string() && e.contains("chosen") && e.contains("timed") &&
                     e.at("timed").is_array(),
                 "timing cache ", path, ": entry ", index, " lacks a device, layer, chosen tactic or timed list");
    TimingEntry entry;
    entry.chosen = tactic_from_json(e.at("chosen"), path, index);
    for (const nlohmann::json& t : e.at("timed")) entry.timed.push_back(tactic_from_json(t, path, index));
    cache.insert(e.at("device").get<std::string>(), e.at("layer").get<std::string>(), std::move(entry));
    ++index;
  }
  return cache;
}

void TimingCache::save(const std::string& path) const {
  nlohmann::json j;
  j["format"] = kFormatName;
  j["version"] = kFormatVersion;
  j["entries"] = nlohmann::json::array();
  for (const auto& [key, entry] : entries_) {
    nlohmann::json timed = nlohmann::json::array();
    for (const ConvTactic& t : entry.timed) timed.push_back(tactic_json(t));
    j["entries"].push_back(
        {{"device", key.first}, {"layer", key.second}, {"chosen", tactic_json(entry.chosen)}, {"timed", timed}});
  }
  // A temporary of this process and thread alone: engines for several GPUs may be built, and saved, at once.
  const std::string temporary = path + ".tmp." + std::to_string(getpid()) + "." +
                                std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    EASTRT_CHECK(out.good(), "cannot write the timing cache ", temporary);
    out << j.dump(1) << "\n";
    EASTRT_CHECK(out.good(), "cannot write the timing cache ", temporary);
  }
  EASTRT_CHECK(std::rename(temporary.c_str(), path.c_str()) == 0, "cannot replace the timing cache ", path, " with ",
               temporary);
}

const TimingEntry* TimingCache::find(const std::string& device, const std::string& layer) const {
  const auto it = entries_.find({device, layer});
  return it == entries_.end() ? nullptr : &it->second;
}

void TimingCache::insert(const std::string& device, const std::string& layer, TimingEntry entry) {
  entries_[{device, layer}] = std::move(entry);
}

}  // namespace eastrt::gpu
