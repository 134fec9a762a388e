// tests/frontend/frontend_test_util.h — what the model tests share: building a registry model,
// counting ops, parameter/MAC checks against a PyTorch reference, and comparing the declared
// weights with a PyTorch state_dict's keys and shapes. Header-only: the suite globs *_test.cpp.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/verifier.h"
#include "models/registry.h"
#include "tests/python_util.h"

namespace kiln::testing {

/// The registry model `name`; building it must succeed.
inline ir::Module build(std::string_view name, const models::ModelConfig& config = {}) {
  Expected<ir::Module> m = models::buildModel(name, config);
  KILN_ASSERT(m.isOk(), "model failed to build");
  return std::move(m).value();
}

/// How many nodes of `kind` `g` has.
inline int64_t countOps(const ir::Graph& g, ir::OpKind kind) {
  int64_t n = 0;
  for (const auto& node : g.nodes()) n += node->kind() == kind;
  return n;
}

/// The type of the value called `name` in `g` (`f32[64]{x}`), "<missing>" when there is none.
inline std::string typeOf(const ir::Graph& g, std::string_view name) {
  const ir::Value* v = g.findValue(name);
  return v ? v->type().str() : std::string("<missing>");
}

/// Rounds to 3 significant digits (1814073344 -> 1.81e9).
inline double sig3(double v) {
  const double scale = std::pow(10.0, std::floor(std::log10(v)) - 2);
  return std::round(v / scale) * scale;
}

/// Params (1000 classes) and MACs at 224 of a PyTorch reference module.
struct Expected224 {
  std::string_view name;
  int64_t params;
  int64_t macs;
};

/// The model's params (at 64 and at 224) and MACs (at 224) are `want`'s, and the default
/// graph is a verified 3x224x224 -> 1000 classifier named after the model.
inline void expectCountsEqual(const Expected224& want) {
  // Parameters do not depend on the resolution: count them on a small graph.
  ir::Module small = build(want.name, {.batch = 1, .resolution = 64});
  EXPECT_EQ(ir::countParams(small.graph), want.params);
  ir::Module full = build(want.name);
  EXPECT_EQ(ir::countParams(full.graph), want.params);
  EXPECT_EQ(ir::graphCost(full.graph).macs, want.macs);
  EXPECT_TRUE(ir::verify(full.graph).isOk());
  EXPECT_EQ(full.graph.name(), want.name);
  EXPECT_EQ(full.graph.inputs()[0]->type().str(), "f32[N,3,224,224]{nchw}");
  EXPECT_EQ(full.graph.outputs()[0]->name(), "logits");
  EXPECT_EQ(full.graph.outputs()[0]->type().str(), "f32[N,1000]{nc}");
}

/// kind ('P' param, 'B' buffer) and shape of each state_dict key.
using Keys = std::map<std::string, std::pair<char, std::string>>;

/// A PyTorch script's state_dict keys, per model.
struct StateDictKeys {
  std::string skip;   // non-empty: why there is no reference (python lacks a module)
  std::string error;  // non-empty: the script failed
  std::map<std::string, Keys> models;
};

/// Runs `KILN_PYTHON <args>` when it imports `modules`; the script prints one line
/// "<model> P|B <key> [<shape>]" per state_dict entry.
inline StateDictKeys readStateDictKeys(std::initializer_list<std::string_view> modules,
                                       const std::string& args) {
  StateDictKeys k;
  k.skip = cannotImport(modules);
  if (!k.skip.empty()) return k;
  const std::string cmd = std::string(KILN_PYTHON) + " " + args;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (pipe && std::fgets(buf, sizeof buf, pipe)) out += buf;
  const int rc = pipe ? ::pclose(pipe) : -1;
  if (rc != 0) {
    k.error = fmt::format("`{}` failed ({}):\n{}", cmd, rc, out);
    return k;
  }
  std::istringstream lines(out);
  std::string model, kind, key, shape;
  while (lines >> model >> kind >> key >> shape) k.models[model][key] = {kind[0], shape};
  return k;
}

/// Every key of `want` is declared by `m` with that kind and shape, and `m` declares no other;
/// `source` names where `want` comes from in the messages ("torchvision").
inline void expectSameKeys(const ir::Module& m, const Keys& want, std::string_view source) {
  Keys got;
  for (const ir::Value* v : m.graph.weights())
    got[v->name()] = {v->kind() == ir::ValueKind::Param ? 'P' : 'B', v->type().shape.str()};
  for (const auto& [key, kindShape] : want) {
    auto it = got.find(key);
    if (it == got.end()) {
      ADD_FAILURE() << "missing " << source << " key " << key;
      continue;
    }
    EXPECT_EQ(it->second, kindShape) << key;
  }
  for (const auto& [key, kindShape] : got)
    EXPECT_TRUE(want.count(key)) << "kiln declares " << key << ", " << source
                                 << " has no such key";
}

/// `tests/align/<script> --keys` for `models`: the state_dict keys of a PyTorch reference
/// module script (torch_resnet_vd.py, torch_seed_models.py).
inline StateDictKeys referenceScriptKeys(std::string_view script,
                                         std::span<const Expected224> models) {
  std::string args = fmt::format("{}/tests/align/{} --keys", KILN_SOURCE_DIR, script);
  for (const Expected224& m : models) fmt::format_to(std::back_inserter(args), " {}", m.name);
  return readStateDictKeys({"torch", "numpy"}, args);
}

/// The body of a names test: skips without the reference, fails when its script failed,
/// then `model`'s keys (more than `minKeys`) against the weights of `m`.
inline void expectReferenceKeys(const StateDictKeys& ref, const std::string& model,
                                size_t minKeys, const ir::Module& m, std::string_view source) {
  if (!ref.skip.empty()) GTEST_SKIP() << "skipped: " << ref.skip;
  ASSERT_TRUE(ref.error.empty()) << ref.error;
  const Keys& want = ref.models.at(model);
  ASSERT_GT(want.size(), minKeys);
  expectSameKeys(m, want, source);
}

}  // namespace kiln::testing
