// Checkpoint folders: npz tensors + state.json, saved through a temporary folder and a rename.
#include "runtime/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "ir/proto_io.h"
#include "runtime/npy.h"

namespace kiln::runtime {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kPrefix = "step-";
constexpr const char* kWeights = "weights.npz";
constexpr const char* kOptimizer = "optimizer.npz";
constexpr const char* kState = "state.json";
constexpr const char* kLatest = "latest";

Status writeString(const fs::path& p, const std::string& text) {
  return ir::writeFileAtomic(p.string(), std::as_bytes(std::span(text.data(), text.size())));
}

/// The checkpoint folders of `root`, oldest first (names sort by step).
std::vector<fs::path> checkpointDirs(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory(ec) && name.starts_with(kPrefix) && name.find('.') == std::string::npos)
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Expected<json> parseJson(const fs::path& p) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ir::readFileBytes(p.string()));
  json j = json::parse(reinterpret_cast<const char*>(bytes.data()),
                       reinterpret_cast<const char*>(bytes.data()) + bytes.size(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) return error("{}: not valid JSON", p.string());
  if (!j.is_object()) return error("{}: expected a JSON object", p.string());
  return j;
}

template <typename T>
Status field(const json& j, const char* key, T& out, const fs::path& p) {
  auto it = j.find(key);
  if (it == j.end()) return error("{}: missing \"{}\"", p.string(), key);
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    return error("{}: \"{}\" has the wrong type ({})", p.string(), key, it->type_name());
  }
  return Status::ok();
}

Expected<CheckpointState> parseState(const fs::path& p) {
  KILN_ASSIGN_OR_RETURN(json j, parseJson(p));
  CheckpointState s;
  int version = 0;
  KILN_TRY(field(j, "format_version", version, p));
  if (version > kCheckpointFormatVersion)
    return error("{}: checkpoint format version {} is newer than this kiln reads ({})", p.string(),
                 version, kCheckpointFormatVersion);
  if (version < 1) return error("{}: invalid format version {}", p.string(), version);
  KILN_TRY(field(j, "model", s.model, p));
  KILN_TRY(field(j, "step", s.step, p));
  KILN_TRY(field(j, "epoch", s.epoch, p));
  auto data = j.find("data_position");
  if (data == j.end() || !data->is_object())
    return error("{}: missing \"data_position\" (an object with epoch and batch)", p.string());
  KILN_TRY(field(*data, "epoch", s.dataEpoch, p));
  KILN_TRY(field(*data, "batch", s.dataBatch, p));
  KILN_TRY(field(j, "schedule_step", s.scheduleStep, p));
  auto rng = j.find("rng");
  if (rng == j.end() || !rng->is_object())
    return error("{}: missing \"rng\" (an object with the seed)", p.string());
  KILN_TRY(field(*rng, "seed", s.seed, p));
  if (s.step < 0 || s.epoch < 0 || s.dataEpoch < 0 || s.dataBatch < 0 || s.scheduleStep < 0)
    return error("{}: negative step, epoch or data position", p.string());
  if (auto o = j.find("options"); o != j.end()) s.optionsJson = o->dump();
  if (auto m = j.find("metrics"); m != j.end()) s.metricsJson = m->dump();
  return s;
}

}  // namespace

bool hasCheckpoint(const std::string& root) {
  std::error_code ec;
  return fs::exists(fs::path(root) / kLatest, ec) || fs::exists(fs::path(root) / kState, ec);
}

Expected<std::string> saveCheckpoint(const std::string& root, const ir::WeightStore& weights,
                                     const ir::WeightStore& optimizer, const CheckpointState& s) {
  const fs::path r(root);
  std::error_code ec;
  fs::create_directories(r, ec);
  if (ec) return error("cannot create the checkpoint folder '{}': {}", root, ec.message());
  const std::string name = fmt::format("{}{:08d}", kPrefix, s.step);
  const fs::path final = r / name;
  const fs::path tmp = r / fmt::format(".{}.tmp.{}", name, ::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) return error("cannot create '{}': {}", tmp.string(), ec.message());
  auto fail = [&](Status st) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    return st;
  };
  json j;
  j["format_version"] = kCheckpointFormatVersion;
  j["model"] = s.model;
  j["step"] = s.step;
  j["epoch"] = s.epoch;
  j["data_position"] = {{"epoch", s.dataEpoch}, {"batch", s.dataBatch}};
  j["schedule_step"] = s.scheduleStep;
  j["rng"] = {{"seed", s.seed}};
  j["options"] = json::parse(s.optionsJson, nullptr, false);
  j["metrics"] = json::parse(s.metricsJson, nullptr, false);
  if (Status st = writeNpz((tmp / kWeights).string(), weights); !st.isOk()) return fail(st);
  if (Status st = writeNpz((tmp / kOptimizer).string(), optimizer); !st.isOk()) return fail(st);
  // state.json last: a folder with it is complete.
  if (Status st = writeString(tmp / kState, j.dump(2) + "\n"); !st.isOk()) return fail(st);
  // Saving the same step again (a resumed run interrupted before its first step) replaces it.
  if (fs::exists(final, ec)) {
    const fs::path old = r / fmt::format(".{}.old.{}", name, ::getpid());
    fs::rename(final, old, ec);
    if (ec) return fail(error("cannot replace '{}': {}", final.string(), ec.message()));
    fs::rename(tmp, final, ec);
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp, final, ec);
  }
  if (ec)
    return fail(
        error("cannot rename '{}' to '{}': {}", tmp.string(), final.string(), ec.message()));
  KILN_TRY(writeString(r / kLatest, name + "\n"));
  // Keep this checkpoint and the one before it.
  std::vector<fs::path> dirs = checkpointDirs(r);
  std::erase(dirs, final);
  if (!dirs.empty()) dirs.pop_back();
  for (const fs::path& d : dirs) fs::remove_all(d, ec);
  return final.string();
}

Expected<Checkpoint> loadCheckpoint(const std::string& path) {
  fs::path dir(path);
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return error("checkpoint '{}': {}", path,
                 fs::exists(dir, ec) ? "not a folder" : "no such file or directory");
  if (!fs::exists(dir / kState, ec)) {
    if (!fs::exists(dir / kLatest, ec))
      return error("checkpoint '{}': no {} or {} in the folder (not a checkpoint)", path, kState,
                   kLatest);
    KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes,
                          ir::readFileBytes((dir / kLatest).string()));
    std::string name(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    if (!name.starts_with(kPrefix) || name.find('/') != std::string::npos)
      return error("{}: expected the name of a checkpoint folder ({}NNNNNNNN), got '{}'",
                   (dir / kLatest).string(), kPrefix, name);
    dir /= name;
    if (!fs::exists(dir / kState, ec))
      return error("{}: names '{}', which holds no {}", (fs::path(path) / kLatest).string(),
                   dir.string(), kState);
  }
  Checkpoint c;
  c.dir = dir.string();
  KILN_ASSIGN_OR_RETURN(c.state, parseState(dir / kState));
  KILN_ASSIGN_OR_RETURN(c.weights, readNpz((dir / kWeights).string()));
  KILN_ASSIGN_OR_RETURN(c.optimizer, readNpz((dir / kOptimizer).string()));
  return c;
}

}  // namespace kiln::runtime
