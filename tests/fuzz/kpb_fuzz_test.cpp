// Bounded fuzzing of the .kpb reader: seeded byte mutations, and field-level mutations made
// through protobuf reflection (ids, op names, attributes, dims, tensor bytes), must give a
// Status or a module that verifies and round-trips, never a crash (CI runs ASan).
#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <limits>
#include <random>

#include "ir/proto_io.h"
#include "ir/verifier.h"
#include "kiln.pb.h"

namespace kiln::ir {
namespace {

namespace gp = google::protobuf;

// KILN_FUZZ_SCALE=N runs N times the iterations (with other seeds) for longer local runs.
int fuzzScale() {
  const char* s = std::getenv("KILN_FUZZ_SCALE");
  return s && std::atoi(s) > 0 ? std::atoi(s) : 1;
}

// A small CNN touching most attribute kinds, with its weights.
Module seedModule() {
  Module m(Graph("fuzz_seed"));
  Graph& g = m.graph;
  Value* x = g.addInput("x", TensorType{DType::F32, Shape{kBatch, 3, 8, 8}, Layout::NCHW},
                        Loc{"seed.kir", 2, 3});
  auto weight = [&](ValueKind kind, std::string name, Shape shape, Layout layout) {
    TensorType t{DType::F32, shape, layout};
    Value* v = g.addWeight(kind, name, t, Loc{"seed.kir", 3, 3});
    m.weights.set(name, Tensor(t.dtype, t.shape, t.layout));
    return v;
  };
  Value* w = weight(ValueKind::Param, "conv.weight", Shape{4, 3, 3, 3}, Layout::OIHW);
  Value* b = weight(ValueKind::Param, "conv.bias", Shape{4}, Layout::X);
  Value* gamma = weight(ValueKind::Param, "bn.weight", Shape{4}, Layout::X);
  Value* beta = weight(ValueKind::Param, "bn.bias", Shape{4}, Layout::X);
  Value* mean = weight(ValueKind::Buffer, "bn.running_mean", Shape{4}, Layout::X);
  Value* var = weight(ValueKind::Buffer, "bn.running_var", Shape{4}, Layout::X);
  Value* fc = weight(ValueKind::Const, "fc.weight", Shape{10, 16}, Layout::OI);
  auto node = [&](OpKind k, std::vector<Value*> ops, Attrs a) {
    auto n = g.createNode(k, std::move(ops), std::move(a), Loc{"seed.kir", 10, 5});
    EXPECT_TRUE(n.isOk()) << n.message();
    return *n;
  };
  Value* y =
      node(OpKind::Conv2d, {x, w, b}, Conv2dAttrs{{1, 1}, {1, 1, 1, 1}, {1, 1}, 1, {}})->result(0);
  y = node(OpKind::BatchNorm, {y, gamma, beta, mean, var}, BatchNormAttrs{1e-5})->result(0);
  y = node(OpKind::Clip, {y}, ClipAttrs{0.0, 6.0})->result(0);
  y = node(OpKind::MaxPool2d, {y}, MaxPool2dAttrs{{2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, false})
          ->result(0);
  Node* split = node(OpKind::Split, {y}, SplitAttrs{1, {1, 3}});
  y = node(OpKind::Concat, {split->result(1), split->result(0)}, AxisAttrs{1})->result(0);
  y = node(OpKind::AdaptiveAvgPool2d, {y}, AdaptiveAvgPool2dAttrs{{2, 2}})->result(0);
  y = node(OpKind::Reshape, {y}, ReshapeAttrs{{0, -1}})->result(0);
  y = node(OpKind::Linear, {y, fc}, NoAttrs{})->result(0);
  Value* c = node(OpKind::Constant, {}, ConstantAttrs{{0.5}, {1}, DType::F32})->result(0);
  y = node(OpKind::Mul, {y, c}, NoAttrs{})->result(0);
  y = node(OpKind::Dropout, {y}, DropoutAttrs{0.1, false, 3})->result(0);
  Node* out = node(OpKind::Softmax, {y}, AxisAttrs{-1});
  out->result(0)->setName("probs");
  g.addOutput(out->result(0));
  g.addOutput(node(OpKind::Reorder, {split->result(0)}, ReorderAttrs{Layout::NHWC})->result(0));
  EXPECT_TRUE(verify(g).isOk()) << verify(g).message();
  return m;
}

// Accepted input must be a module that verifies and survives another round trip.
// `ctx` describes the input, computed only when a check fails.
void checkResult(const Expected<Module>& r, const std::function<std::string()>& ctx) {
  if (!r.isOk()) {
    ASSERT_EQ(r.message().rfind("fuzz.kpb: ", 0), 0u) << ctx() << ": " << r.message();
    return;
  }
  Status verified = verify(r->graph);
  ASSERT_TRUE(verified.isOk()) << ctx() << ": " << verified.message();
  auto again = parseModule(serializeModule(*r), "again.kpb");
  ASSERT_TRUE(again.isOk()) << ctx() << ": " << again.message();
}

TEST(KpbFuzzTest, ByteMutationsNeverCrash) {
  const std::string seed = serializeModule(seedModule());
  std::mt19937_64 rng(4242 + fuzzScale() - 1);
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  int ok = 0;
  for (int i = 0; i < 6000 * fuzzScale(); ++i) {
    std::string b = seed;
    for (size_t k = 0, n = 1 + pick(4); k < n; ++k) {
      switch (pick(5)) {
        case 0:
          if (!b.empty()) b[pick(b.size())] ^= static_cast<char>(1u << pick(8));
          break;
        case 1:
          if (!b.empty()) b[pick(b.size())] = static_cast<char>(rng());
          break;
        case 2:
          b.resize(pick(b.size() + 1));
          break;
        case 3:
          b.insert(pick(b.size() + 1), 1 + pick(8), static_cast<char>(rng()));
          break;
        case 4: {
          size_t at = pick(b.size());
          b.erase(at, 1 + pick(8));
          break;
        }
      }
    }
    auto r = parseModule(b, "fuzz.kpb");
    ok += r.isOk();
    checkResult(r, [&] { return fmt::format("iteration {}", i); });
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(ok, 0);
}

// ---- structured mutations through reflection ----

class FieldMutator {
 public:
  explicit FieldMutator(uint64_t seed) : rng_(seed) {}

  // Sets one attribute of a random node to an extreme value of the same kind: these reach
  // the shape rules, which must reject them without overflowing.
  void mutateAttr(pb::Module& m) {
    pb::Graph* g = m.mutable_graph();
    if (g->nodes_size() == 0) return;
    pb::Node* n = g->mutable_nodes(static_cast<int>(pick(g->nodes_size())));
    if (n->attrs_size() == 0) return;
    pb::Attr* a = n->mutable_attrs(static_cast<int>(pick(n->attrs_size())));
    if (a->has_i()) {
      a->set_i(anyInt());
    } else if (a->has_f()) {
      a->set_f(anyDouble());
    } else if (a->has_ints()) {
      auto* v = a->mutable_ints()->mutable_values();
      if (v->empty() || pick(4) == 0)
        v->Add(anyInt());
      else
        v->Set(static_cast<int>(pick(v->size())), anyInt());
    } else if (a->has_floats()) {
      a->mutable_floats()->add_values(anyDouble());
    } else {
      mutate(*a);
    }
  }

  void mutate(gp::Message& m, int depth = 0) {
    const gp::Descriptor* d = m.GetDescriptor();
    const gp::Reflection* r = m.GetReflection();
    const gp::FieldDescriptor* f = d->field(static_cast<int>(pick(d->field_count())));
    bool isMessage = f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE;
    if (f->is_repeated()) {
      int n = r->FieldSize(m, f);
      if (isMessage && n > 0 && depth < 6 && pick(4) != 0)
        return mutate(*r->MutableRepeatedMessage(&m, f, static_cast<int>(pick(n))), depth + 1);
      switch (pick(4)) {
        case 0:
          if (n > 0) r->RemoveLast(&m, f);
          return;
        case 1:
          if (n > 1) r->SwapElements(&m, f, static_cast<int>(pick(n)), static_cast<int>(pick(n)));
          return;
        case 2:
          if (n > 0) {
            r->SwapElements(&m, f, static_cast<int>(pick(n)), n - 1);
            r->RemoveLast(&m, f);
          }
          return;
        case 3:
          if (isMessage) {
            gp::Message* added = r->AddMessage(&m, f);
            if (n > 0 && pick(2) == 0)
              added->CopyFrom(r->GetRepeatedMessage(m, f, static_cast<int>(pick(n))));
            else
              mutate(*added, depth + 1);
          } else {
            addScalar(m, f);
          }
          return;
      }
      return;
    }
    if (isMessage) {
      if (depth < 6 && pick(6) != 0) return mutate(*r->MutableMessage(&m, f), depth + 1);
      r->ClearField(&m, f);
      return;
    }
    setScalar(m, f);
  }

 private:
  size_t pick(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

  int64_t anyInt() {
    static constexpr int64_t kInteresting[] = {0,
                                               1,
                                               -1,
                                               2,
                                               3,
                                               4,
                                               5,
                                               6,
                                               7,
                                               8,
                                               16,
                                               -2,
                                               100,
                                               std::numeric_limits<int32_t>::max(),
                                               std::numeric_limits<int32_t>::min(),
                                               std::numeric_limits<int64_t>::max(),
                                               std::numeric_limits<int64_t>::min(),
                                               int64_t{1} << 40,
                                               int64_t{1} << 62};
    if (pick(4) == 0) return static_cast<int64_t>(rng_());
    return kInteresting[pick(std::size(kInteresting))];
  }
  double anyDouble() {
    static constexpr double kInteresting[] = {0.0,
                                              -0.0,
                                              1.0,
                                              -1.0,
                                              0.5,
                                              1e-5,
                                              1e308,
                                              5e-324,
                                              std::numeric_limits<double>::infinity(),
                                              -std::numeric_limits<double>::infinity(),
                                              std::numeric_limits<double>::quiet_NaN()};
    return kInteresting[pick(std::size(kInteresting))];
  }
  std::string anyString(std::string current) {
    static const char* kWords[] = {
        "",        "conv2d", "relu",  "split",  "concat", "constant",    "reshape",
        "f32",     "f64",    "i64",   "bool",   "bf16",   "nchw",        "nhwc",
        "nChw16c", "x",      "oihw",  "stride", "pad",    "axis",        "sizes",
        "value",   "shape",  "dtype", "layout", "probs",  "conv.weight", "\xff\x00garbage"};
    switch (pick(3)) {
      case 0:
        return kWords[pick(std::size(kWords))];
      case 1:
        current.resize(pick(current.size() + 1));
        return current;
      default:
        current.insert(pick(current.size() + 1), 1, static_cast<char>(rng_()));
        return current;
    }
  }

  void setScalar(gp::Message& m, const gp::FieldDescriptor* f) {
    const gp::Reflection* r = m.GetReflection();
    switch (f->cpp_type()) {
      case gp::FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(&m, f, static_cast<int32_t>(anyInt()));
        break;
      case gp::FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(&m, f, anyInt());
        break;
      case gp::FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(&m, f, static_cast<uint32_t>(anyInt()));
        break;
      case gp::FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(&m, f, static_cast<uint64_t>(anyInt()));
        break;
      case gp::FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetDouble(&m, f, anyDouble());
        break;
      case gp::FieldDescriptor::CPPTYPE_FLOAT:
        r->SetFloat(&m, f, static_cast<float>(anyDouble()));
        break;
      case gp::FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(&m, f, !r->GetBool(m, f));
        break;
      case gp::FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnumValue(&m, f, static_cast<int>(pick(8)) - 1);
        break;
      case gp::FieldDescriptor::CPPTYPE_STRING:
        r->SetString(&m, f, anyString(r->GetString(m, f)));
        break;
      case gp::FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
  }

  void addScalar(gp::Message& m, const gp::FieldDescriptor* f) {
    const gp::Reflection* r = m.GetReflection();
    switch (f->cpp_type()) {
      case gp::FieldDescriptor::CPPTYPE_INT32:
        r->AddInt32(&m, f, static_cast<int32_t>(anyInt()));
        break;
      case gp::FieldDescriptor::CPPTYPE_INT64:
        r->AddInt64(&m, f, anyInt());
        break;
      case gp::FieldDescriptor::CPPTYPE_UINT32:
        r->AddUInt32(&m, f, static_cast<uint32_t>(anyInt()));
        break;
      case gp::FieldDescriptor::CPPTYPE_UINT64:
        r->AddUInt64(&m, f, static_cast<uint64_t>(anyInt()));
        break;
      case gp::FieldDescriptor::CPPTYPE_DOUBLE:
        r->AddDouble(&m, f, anyDouble());
        break;
      case gp::FieldDescriptor::CPPTYPE_FLOAT:
        r->AddFloat(&m, f, static_cast<float>(anyDouble()));
        break;
      case gp::FieldDescriptor::CPPTYPE_BOOL:
        r->AddBool(&m, f, pick(2) == 0);
        break;
      case gp::FieldDescriptor::CPPTYPE_ENUM:
        r->AddEnumValue(&m, f, static_cast<int>(pick(8)) - 1);
        break;
      case gp::FieldDescriptor::CPPTYPE_STRING:
        r->AddString(&m, f, anyString(""));
        break;
      case gp::FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
  }

  std::mt19937_64 rng_;
};

TEST(KpbFuzzTest, FieldMutationsNeverCrash) {
  pb::Module seed;
  ASSERT_TRUE(seed.ParseFromString(serializeModule(seedModule())));
  seed.set_format_version(kKpbFormatVersion);
  FieldMutator mutator(99 + fuzzScale() - 1);
  int ok = 0, failed = 0;
  for (int i = 0; i < 6000 * fuzzScale(); ++i) {
    pb::Module p = seed;
    for (int k = 0, n = 1 + i % 3; k < n; ++k) {
      if (i % 2 == 0)
        mutator.mutate(p);
      else
        mutator.mutateAttr(p);
    }
    if (p.format_version() > kKpbFormatVersion) p.set_format_version(kKpbFormatVersion);
    auto r = parseModule(p.SerializeAsString(), "fuzz.kpb");
    r.isOk() ? ++ok : ++failed;
    checkResult(r, [&] {
      return fmt::format("iteration {}: {}", i, p.ShortDebugString().substr(0, 3000));
    });
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Mutating locations, names and data bytes keeps a module valid; most others must not.
  EXPECT_GT(ok, 300);
  EXPECT_GT(failed, 1500);
}

}  // namespace
}  // namespace kiln::ir
