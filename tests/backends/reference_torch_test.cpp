// Reference backend vs PyTorch: tests/backends/torch_ops.py writes single-op cases (inputs and
// torch outputs as raw little-endian files plus a text manifest); each case becomes a one-node
// graph evaluated here and compared within kOpVsTorch (data movement: bit-exact).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/backends/reference_test_util.h"

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;
using ir::DType;

struct TensorFile {
  std::string file;
  std::string layout;  // "-" = the default of its rank
  ir::Shape shape;
  std::optional<DType> dtype;  // itype/otype: other than the case's dtype
};

struct Case {
  std::string name;
  std::string op;
  DType dtype = DType::F32;
  bool exact = false;
  std::vector<std::pair<std::string, std::vector<std::string>>> attrs;
  std::vector<TensorFile> inputs, outputs;
};

// ---- attribute parsing (walks the op's attribute fields, so it knows every type) ----

Status parseField(int64_t& v, const std::vector<std::string>& t) {
  if (t.size() != 1) return error("expected one integer");
  v = std::stoll(t[0]);
  return Status::ok();
}
Status parseField(double& v, const std::vector<std::string>& t) {
  if (t.size() != 1) return error("expected one number");
  v = std::strtod(t[0].c_str(), nullptr);  // accepts inf, -inf
  return Status::ok();
}
Status parseField(bool& v, const std::vector<std::string>& t) {
  if (t.size() != 1) return error("expected 0 or 1");
  v = t[0] == "1";
  return Status::ok();
}
template <size_t N>
Status parseField(ir::Ints<N>& v, const std::vector<std::string>& t) {
  if (t.size() != N) return error("expected {} integers", N);
  for (size_t i = 0; i < N; ++i) v[i] = std::stoll(t[i]);
  return Status::ok();
}
Status parseField(ir::IntList& v, const std::vector<std::string>& t) {
  v.clear();
  for (const auto& s : t) v.push_back(std::stoll(s));
  return Status::ok();
}
Status parseField(ir::FloatList& v, const std::vector<std::string>& t) {
  v.clear();
  for (const auto& s : t) v.push_back(std::strtod(s.c_str(), nullptr));
  return Status::ok();
}
Status parseField(DType& v, const std::vector<std::string>& t) {
  auto d = t.size() == 1 ? ir::parseDType(t[0]) : std::nullopt;
  if (!d) return error("expected a dtype");
  v = *d;
  return Status::ok();
}
Status parseField(ir::Layout& v, const std::vector<std::string>& t) {
  auto l = t.size() == 1 ? ir::parseLayout(t[0]) : std::nullopt;
  if (!l) return error("expected a layout");
  v = *l;
  return Status::ok();
}

/// Post-ops by name (those without parameters).
Status parseField(ir::PostOpList& v, const std::vector<std::string>& t) {
  v.clear();
  for (const auto& s : t) {
    auto k = ir::parsePostOpKind(s);
    if (!k || ir::postOpArity(*k) != 0) return error("expected a post-op without parameters");
    v.push_back(ir::PostOp{*k, 0.0, 0.0});
  }
  return Status::ok();
}

Status setAttr(ir::Attrs& attrs, const std::string& name, const std::vector<std::string>& tokens) {
  bool found = false;
  Status st;
  std::visit(
      [&](auto& a) {
        ir::forEachField(a, [&](std::string_view field, auto& value) {
          if (field != name) return;
          found = true;
          st = parseField(value, tokens).withContext(fmt::format("attribute {}", name));
        });
      },
      attrs);
  if (!found) return error("no attribute named {}", name);
  return st;
}

// ---- files ----

ir::Layout layoutOf(const TensorFile& f) {
  if (f.layout == "-") return ir::defaultLayout(f.shape.rank()).value();
  return ir::parseLayout(f.layout).value();
}

ir::Tensor readTensor(const fs::path& dir, const TensorFile& f, DType caseDType) {
  ir::Tensor t(f.dtype.value_or(caseDType), f.shape, layoutOf(f));
  std::ifstream in(dir / f.file, std::ios::binary);
  in.read(reinterpret_cast<char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  EXPECT_TRUE(in.good() || t.nbytes() == 0) << "short file " << f.file;
  return t;  // little-endian files on a little-endian host
}

std::vector<Case> parseManifest(const fs::path& path) {
  std::vector<Case> cases;
  std::ifstream in(path);
  std::string line;
  Case c;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string key;
    ss >> key;
    std::vector<std::string> rest;
    for (std::string tok; ss >> tok;) rest.push_back(tok);
    if (key == "case") {
      c = Case{};
      c.name = rest.at(0);
    } else if (key == "op") {
      c.op = rest.at(0);
    } else if (key == "dtype") {
      c.dtype = ir::parseDType(rest.at(0)).value();
    } else if (key == "exact") {
      c.exact = rest.at(0) == "1";
    } else if (key == "attr") {
      c.attrs.emplace_back(rest.at(0), std::vector<std::string>(rest.begin() + 1, rest.end()));
    } else if (key == "input" || key == "output") {
      TensorFile f{rest.at(0), rest.at(1), {}, std::nullopt};
      for (size_t i = 2; i < rest.size(); ++i) f.shape.dims().push_back(std::stoll(rest[i]));
      (key == "input" ? c.inputs : c.outputs).push_back(f);
    } else if (key == "itype" || key == "otype") {
      auto& files = key == "itype" ? c.inputs : c.outputs;
      files.at(std::stoul(rest.at(0))).dtype = ir::parseDType(rest.at(1)).value();
    } else if (key == "end") {
      cases.push_back(c);
    }
  }
  return cases;
}

// ---- the suite ----

class ReferenceVsTorch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string python = KILN_PYTHON;
    if (std::system((python + " -c 'import torch, numpy' > /dev/null 2>&1").c_str()) != 0) {
      skipReason_ = python + " cannot import torch and numpy; the PyTorch comparison is skipped";
      return;
    }
    char tmpl[] = "/tmp/kiln_torch_ops_XXXXXX";
    if (!mkdtemp(tmpl)) {
      setupError_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    const std::string cmd = fmt::format("{} {}/tests/backends/torch_ops.py {} 2>&1", python,
                                        KILN_SOURCE_DIR, dir_.string());
    std::string output;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[512];
      while (fgets(buf, sizeof buf, p)) output += buf;
      if (pclose(p) != 0) setupError_ = "torch_ops.py failed:\n" + output;
    } else {
      setupError_ = "cannot run " + cmd;
    }
    if (setupError_.empty()) cases_ = parseManifest(dir_ / "manifest.txt");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  void SetUp() override {
    if (!skipReason_.empty()) GTEST_SKIP() << skipReason_;
    ASSERT_TRUE(setupError_.empty()) << setupError_;
    ASSERT_FALSE(cases_.empty()) << "no cases in " << dir_;
  }

  /// Empty when the case matches, else what went wrong.
  static std::string check(const Case& c) {
    auto kind = ir::parseOpKind(c.op);
    if (!kind) return "unknown op " + c.op;
    ir::Attrs attrs = ir::defaultAttrs(*kind);
    for (const auto& [name, tokens] : c.attrs)
      if (Status st = setAttr(attrs, name, tokens); !st.isOk()) return st.message();
    std::vector<ir::Tensor> operands;
    for (const TensorFile& f : c.inputs) operands.push_back(readTensor(dir_, f, c.dtype));
    auto r = runOp(*kind, attrs, operands);
    if (!r.isOk()) return r.message();
    if (r->size() != c.outputs.size())
      return fmt::format("{} results, torch has {}", r->size(), c.outputs.size());
    for (size_t i = 0; i < c.outputs.size(); ++i) {
      const ir::Tensor& got = (*r)[i];
      ir::Tensor want = readTensor(dir_, c.outputs[i], c.dtype);
      if (got.type() != want.type())
        return fmt::format("result {} is {}, torch's is {}", i, got.type().str(),
                           want.type().str());
      auto close = allClose(valuesOf(got), valuesOf(want), c.exact ? kExact : kOpVsTorch);
      if (!close) return fmt::format("result {}: {}", i, close.message());
    }
    return "";
  }

  static inline fs::path dir_;
  static inline std::string skipReason_, setupError_;
  static inline std::vector<Case> cases_;
};

TEST_F(ReferenceVsTorch, EveryCaseMatches) {
  int failed = 0;
  for (const Case& c : cases_) {
    std::string problem = check(c);
    if (!problem.empty()) {
      ++failed;
      ADD_FAILURE() << c.name << " (" << c.op << "): " << problem;
    }
  }
  EXPECT_EQ(failed, 0) << "of " << cases_.size() << " cases";
}

TEST_F(ReferenceVsTorch, EveryOpHasACase) {
  std::set<std::string> covered;
  for (const Case& c : cases_) covered.insert(c.op);
  for (const ir::OpInfo& info : ir::allOps())
    EXPECT_TRUE(covered.count(std::string(info.name)))
        << "op " << info.name << " has no case in tests/backends/torch_ops.py";
}

}  // namespace
}  // namespace kiln::testing
