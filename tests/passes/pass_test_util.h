// Helpers shared by the pass tests: parsing .kir into a module, deterministic weight data,
// and a printable summary of the weight-store entries passes make.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/tensor.h"

namespace kiln::passes::testing {

inline std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void writeFile(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

/// Element i of a weight the test did not provide: 0.5, 1.0, …, 4.0 repeating (exact in
/// every float type, never zero so divisions stay finite). Goldens print values made from it.
inline double patternValue(int64_t i) { return 0.5 * static_cast<double>(i % 8 + 1); }

inline ir::Tensor patternTensor(const ir::TensorType& type) {
  ir::Tensor t(type.dtype, type.shape, type.layout);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    const double v = patternValue(i);
    switch (type.dtype) {
      case ir::DType::F32: t.data<float>()[i] = static_cast<float>(v); break;
      case ir::DType::F64: t.data<double>()[i] = v; break;
      case ir::DType::I64: t.data<int64_t>()[i] = i % 8 + 1; break;
      case ir::DType::I32: t.data<int32_t>()[i] = static_cast<int32_t>(i % 8 + 1); break;
      case ir::DType::I8: t.data<int8_t>()[i] = static_cast<int8_t>(i % 8 + 1); break;
      case ir::DType::U8: t.data<uint8_t>()[i] = static_cast<uint8_t>(i % 8 + 1); break;
      case ir::DType::Bool: t.data<uint8_t>()[i] = 1; break;
      case ir::DType::F16:
      case ir::DType::BF16: break;  // left zero
    }
  }
  return t;
}

/// Gives every weight declaration without data the pattern tensor of its type.
inline void fillPatternWeights(ir::Module& m) {
  for (const ir::Value* w : m.graph.weights())
    if (!m.weights.contains(w->name())) m.weights.set(w->name(), patternTensor(w->type()));
}

/// Parses .kir text (failing the test on a parse error) into a module with pattern weights.
inline ir::Module parseModule(std::string_view text, std::string_view file = "test.kir") {
  Expected<ir::Graph> g = ir::parseGraph(text, file);
  EXPECT_TRUE(g.isOk()) << g.message();
  if (!g.isOk()) return ir::Module();
  ir::Module m(std::move(*g));
  fillPatternWeights(m);
  return m;
}

/// `// store: <name> : <type> sum=<sum>` for each store entry that is not a param or buffer
/// declaration (the tensors passes make, and entries nothing declares), so goldens pin what
/// constant-fold added and dce removed.
inline std::string storeSummary(const ir::Module& m) {
  std::string out;
  for (const auto& [name, t] : m.weights.entries()) {
    const ir::Value* v = m.graph.findValue(name);
    if (v && (v->kind() == ir::ValueKind::Param || v->kind() == ir::ValueKind::Buffer)) continue;
    double sum = 0;
    for (int64_t i = 0; i < t.numElements(); ++i) sum += t.at(i);
    out += "// store: " + name + " : " + t.type().str() + " sum=" + ir::printDouble(sum) +
           (v ? "" : " (undeclared)") + "\n";
  }
  return out;
}

}  // namespace kiln::passes::testing
