// tests/align/align_util.h — the harness the alignment suites share: run a PyTorch reference
// script (tests/align/torch_*.py) into a temporary directory, read what it wrote (weights.npz,
// x.npy, y.npy), run the registry model on the reference backend with those weights and
// compare the logits with testing::modelTolerance. Header-only: the suite globs *_test.cpp.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "models/registry.h"
#include "runtime/npy.h"
#include "tests/python_util.h"
#include "tests/tolerance.h"

namespace kiln::testing {

/// KILN_ALIGN_RES, or `fallback` when it is unset; it must lie in [minimum, 1024].
inline int64_t alignResolution(int64_t fallback = 64, int64_t minimum = 32) {
  const char* env = std::getenv("KILN_ALIGN_RES");
  if (!env || !*env) return fallback;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  const bool ok = *end == '\0' && v >= minimum && v <= 1024;
  if (!ok)
    std::fprintf(stderr, "KILN_ALIGN_RES must be an integer in [%lld, 1024]\n",
                 static_cast<long long>(minimum));
  KILN_ASSERT(ok, "KILN_ALIGN_RES out of range");
  return v;
}

/// Empty when KILN_PYTHON imports every module of `modules`; otherwise why the suite skips
/// ("/usr/bin/python3 cannot import torch and numpy; no PyTorch reference").
inline std::string missingPythonModules(std::initializer_list<std::string_view> modules) {
  const std::string why = cannotImport(modules);
  return why.empty() ? why : why + "; no PyTorch reference";
}

/// `<temp>/kiln_align_<tag>_<pid>`, removed with the object.
class TempDir {
 public:
  explicit TempDir(std::string_view tag)
      : path_(std::filesystem::temp_directory_path() /
              fmt::format("kiln_align_{}_{}", tag, ::getpid())) {}
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// What a reference script wrote for one model.
struct Reference {
  ir::WeightStore weights;
  ir::Tensor x, y;
  std::string summary;  // the script's "max|y| … f32_vs_f64 …"
};

/// Reads `dir`/weights.npz, x.npy and y.npy.
inline Expected<Reference> readReference(const std::filesystem::path& dir) {
  Reference r;
  KILN_ASSIGN_OR_RETURN(r.weights, runtime::readNpz((dir / "weights.npz").string()));
  KILN_ASSIGN_OR_RETURN(r.x, runtime::readNpy((dir / "x.npy").string()));
  KILN_ASSIGN_OR_RETURN(r.y, runtime::readNpy((dir / "y.npy").string()));
  return r;
}

/// `tests/align/torch_models.py --model <model>` into `dir` (seed 0); the summary is the
/// script's output. An error carries the command and its output.
inline Expected<Reference> runTorchModels(std::string_view model, int64_t batch, int64_t resolution,
                                          const std::filesystem::path& dir,
                                          std::string_view extraArgs = "") {
  const std::string cmd = fmt::format(
      "{} {}/tests/align/torch_models.py --model {} --seed 0 --batch {} --resolution {} "
      "--out {} {}",
      KILN_PYTHON, KILN_SOURCE_DIR, model, batch, resolution, dir.string(), extraArgs);
  auto [rc, out] = runCommand(cmd);
  if (rc != 0) return Status::error(cmd + "\n" + out);
  KILN_ASSIGN_OR_RETURN(Reference r, readReference(dir));
  r.summary = out.substr(0, out.find_last_not_of('\n') + 1);
  return r;
}

/// One run of `tests/align/<script>` for several models (importing torch is the slow part):
/// `--seed 0 --batch B --resolution R --out DIR --model <modelArgs...>`. The script writes
/// DIR/<key> and prints "<key> <summary>" for each model; the references, by key.
inline Expected<std::map<std::string, Reference>> runReferenceScript(
    std::string_view script, int64_t batch, int64_t resolution, const std::filesystem::path& dir,
    const std::vector<std::string>& modelArgs, const std::vector<std::string>& keys) {
  std::string cmd = fmt::format(
      "{} {}/tests/align/{} --seed 0 --batch {} --resolution {} --out {} --model", KILN_PYTHON,
      KILN_SOURCE_DIR, script, batch, resolution, dir.string());
  for (const std::string& m : modelArgs) cmd += " " + m;
  auto [rc, out] = runCommand(cmd);
  if (rc != 0) return Status::error(cmd + "\n" + out);
  std::map<std::string, std::string> summaries;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const size_t space = line.find(' ');
    if (space != std::string::npos) summaries[line.substr(0, space)] = line.substr(space + 1);
  }
  std::map<std::string, Reference> refs;
  for (const std::string& key : keys) {
    KILN_ASSIGN_OR_RETURN(Reference r, readReference(dir / key));
    r.summary = summaries[key];
    refs.emplace(key, std::move(r));
  }
  return refs;
}

/// SetUp of a suite whose references one runReferenceScript made: skips when python lacks
/// torch (`skip`), fails when `key`'s reference was not produced.
inline void requireReference(const std::string& skip,
                             const std::optional<std::map<std::string, Reference>>& refs,
                             const std::string& key) {
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(refs.has_value());
  ASSERT_TRUE(refs->count(key)) << "the PyTorch reference was not produced";
  ASSERT_FALSE(refs->at(key).y.empty()) << "the PyTorch reference was not produced";
}

/// The registry model `name` built with `config`, the reference weights bound.
inline Expected<ir::Module> buildWithWeights(std::string_view name,
                                             const models::ModelConfig& config,
                                             const Reference& ref) {
  KILN_ASSIGN_OR_RETURN(ir::Module module, models::buildModel(name, config));
  module.weights = ref.weights;
  return module;
}

/// `module` on the reference input: its one output, shaped like the reference's.
inline Expected<ir::Tensor> runOnReferenceInput(const ir::Module& module, const Reference& ref) {
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> out,
                        backends::reference::run(module, std::span<const ir::Tensor>(&ref.x, 1)));
  if (out.size() != 1) return error("{} outputs, expected 1", out.size());
  if (out[0].shape() != ref.y.shape())
    return error("output shape {} differs from the reference's {}", out[0].shape().str(),
                 ref.y.shape().str());
  return std::move(out[0]);
}

/// max |got - want| and max |want|.
inline std::pair<double, double> compare(const ir::Tensor& got, const ir::Tensor& want) {
  double maxDiff = 0, maxRef = 0;
  for (int64_t i = 0; i < want.numElements(); ++i) {
    maxRef = std::max(maxRef, std::abs(want.at(i)));
    maxDiff = std::max(maxDiff, std::abs(got.at(i) - want.at(i)));
  }
  return {maxDiff, maxRef};
}

/// What the reference must look like and how the run is reported.
struct AlignSpec {
  std::string name;  // printed
  int64_t batch = 0;
  int64_t resolution = 0;
  int64_t inChannels = 3;
  int64_t numClasses = 1000;
  double minMaxRef = 0.1;  // logits all below this would make the comparison vacuous
};

/// The alignment: the weights bind strictly (every name and shape matches, nothing left over,
/// like PyTorch's strict load_state_dict), x and y have the expected shapes, and the reference
/// backend's logits are within testing::modelTolerance(max|y|) of y. Records and prints the
/// figures. Use under ASSERT_NO_FATAL_FAILURE.
inline void expectMatchesReference(const ir::Module& module, const Reference& ref,
                                   const AlignSpec& spec) {
  Status binding = ir::checkWeightBinding(module.graph, module.weights, /*strict=*/true);
  ASSERT_TRUE(binding.isOk()) << binding.message();
  const int64_t res = spec.resolution;
  ASSERT_EQ(ref.x.shape(), (ir::Shape{spec.batch, spec.inChannels, res, res}));
  ASSERT_EQ(ref.y.shape(), (ir::Shape{spec.batch, spec.numClasses}));

  const auto start = std::chrono::steady_clock::now();
  Expected<ir::Tensor> logits = runOnReferenceInput(module, ref);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(logits.isOk()) << logits.message();
  ASSERT_EQ(logits->dtype(), ir::DType::F32);

  auto [maxDiff, maxRef] = compare(*logits, ref.y);
  const double tol = modelTolerance(maxRef);
  ::testing::Test::RecordProperty("resolution", static_cast<int>(res));
  ::testing::Test::RecordProperty("max_abs_diff", fmt::format("{:.3g}", maxDiff));
  ::testing::Test::RecordProperty("max_abs_ref", fmt::format("{:.6g}", maxRef));
  std::fprintf(stderr,
               "%s @%lldx%lld batch %lld: max|kiln - torch| = %.3g, max|torch| = %.4g, "
               "tolerance %.3g, reference run %.1f s (torch: %s)\n",
               spec.name.c_str(), static_cast<long long>(res), static_cast<long long>(res),
               static_cast<long long>(spec.batch), maxDiff, maxRef, tol, seconds,
               ref.summary.c_str());
  EXPECT_GT(maxRef, spec.minMaxRef);
  EXPECT_LE(maxDiff, tol) << "max|y| = " << maxRef;
}

/// The comparison must be able to fail: `module` (deliberately broken) runs on the reference
/// input and its logits differ from y by more than `factor` tolerances.
inline void expectDetected(const ir::Module& module, const Reference& ref, double factor) {
  Expected<ir::Tensor> logits = runOnReferenceInput(module, ref);
  ASSERT_TRUE(logits.isOk()) << logits.message();
  auto [maxDiff, maxRef] = compare(*logits, ref.y);
  EXPECT_GT(maxDiff, factor * modelTolerance(maxRef)) << "max|y| = " << maxRef;
}

/// Adds `delta` to every element of the f32 weight `key` (which must exist).
inline void shiftWeight(ir::WeightStore& weights, const std::string& key, float delta) {
  const ir::Tensor* original = weights.find(key);
  KILN_ASSERT(original != nullptr, "no such weight");
  ir::Tensor shifted = original->clone();
  for (float& v : shifted.span<float>()) v += delta;
  weights.set(key, shifted);
}

}  // namespace kiln::testing
