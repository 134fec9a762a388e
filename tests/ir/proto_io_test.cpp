// .kpb: every op of the table round-trips (structure, attributes, locations, weights of
// every dtype), random graphs round-trip, and each validation error is reported.
#include "ir/proto_io.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "ir/printer.h"
#include "ir/verifier.h"
#include "kiln.pb.h"

namespace kiln::ir {
namespace {

namespace fs = std::filesystem;

TensorType t4(Dim n, Dim c, Dim h, Dim w, Layout l = Layout::NCHW) {
  return TensorType{DType::F32, Shape{n, c, h, w}, l};
}
TensorType tt(std::initializer_list<Dim> dims, DType dtype = DType::F32) {
  return makeType(dtype, Shape(dims));
}

// A small valid use of one op: operand types (operand 0 becomes a graph input, the others
// weights or further inputs) and non-default attributes where the op has any.
struct OpCase {
  std::vector<TensorType> operands;
  std::function<void(Attrs&)> setAttrs = [](Attrs&) {};
};

const std::map<std::string, OpCase>& opCases() {
  const TensorType x = t4(kBatch, 4, 8, 8);
  static const std::map<std::string, OpCase> cases = {
      {"conv2d",
       {{x, t4(6, 4, 3, 3, Layout::OIHW), tt({6})},
        [](Attrs& a) {
          auto& c = std::get<Conv2dAttrs>(a);
          c.stride = {2, 1};
          c.pad = {1, 1, 0, 2};
          c.dilation = {1, 2};
        }}},
      {"batch_norm",
       {{x, tt({4}), tt({4}), tt({4}), tt({4})},
        [](Attrs& a) { std::get<BatchNormAttrs>(a).epsilon = 1e-3; }}},
      {"relu", {{x}}},
      {"relu6", {{x}}},
      {"sigmoid", {{x}}},
      {"swish", {{x}}},
      {"hardswish", {{x}}},
      {"hardsigmoid",
       {{x},
        [](Attrs& a) {
          std::get<HardSigmoidAttrs>(a) = {0.2, 0.5};
        }}},
      {"tanh", {{x}}},
      {"clip", {{x}, [](Attrs& a) { std::get<ClipAttrs>(a).max = 6.0; }}},  // min stays -inf
      {"add", {{x, tt({4, 1, 1})}}},
      {"sub", {{x, x}}},
      {"mul", {{x, tt({1})}}},
      {"div", {{x, x}}},
      {"channel_scale", {{x, t4(kBatch, 4, 1, 1)}}},
      {"matmul", {{tt({2, 3}), tt({3, 5})}}},
      {"linear", {{tt({kBatch, 8}), TensorType{DType::F32, Shape{5, 8}, Layout::OI}, tt({5})}}},
      {"max_pool2d",
       {{x},
        [](Attrs& a) {
          auto& p = std::get<MaxPool2dAttrs>(a);
          p.kernel = {3, 3};
          p.stride = {2, 2};
          p.pad = {1, 1, 1, 1};
          p.ceil_mode = true;
        }}},
      {"avg_pool2d",
       {{x},
        [](Attrs& a) {
          auto& p = std::get<AvgPool2dAttrs>(a);
          p.kernel = {2, 2};
          p.stride = {2, 2};
          p.count_include_pad = false;
        }}},
      {"global_avg_pool", {{x}}},
      {"adaptive_avg_pool2d",
       {{x},
        [](Attrs& a) {
          std::get<AdaptiveAvgPool2dAttrs>(a).output_size = {2, 3};
        }}},
      {"concat", {{x, x, t4(kBatch, 2, 8, 8)}}},
      {"split",
       {{x},
        [](Attrs& a) {
          std::get<SplitAttrs>(a) = {1, {1, 3}};
        }}},
      {"slice",
       {{x},
        [](Attrs& a) {
          std::get<SliceAttrs>(a) = {{2, 3}, {1, 0}, {7, 100}, {2, 1}};
        }}},
      {"reshape",
       {{x},
        [](Attrs& a) {
          std::get<ReshapeAttrs>(a).shape = {0, -1};
        }}},
      {"flatten", {{x}}},
      {"transpose",
       {{x},
        [](Attrs& a) {
          std::get<TransposeAttrs>(a).perm = {0, 2, 3, 1};
        }}},
      {"pad",
       {{x},
        [](Attrs& a) {
          std::get<PadAttrs>(a) = {{0, 0, 1, 2, 0, 0, 3, 4}, -0.5};
        }}},
      {"reorder", {{x}, [](Attrs& a) { std::get<ReorderAttrs>(a).layout = Layout::NChw16c; }}},
      {"softmax", {{tt({kBatch, 10})}, [](Attrs& a) { std::get<AxisAttrs>(a).axis = -1; }}},
      {"log_softmax", {{tt({kBatch, 10})}}},
      {"dropout",
       {{x},
        [](Attrs& a) {
          std::get<DropoutAttrs>(a) = {0.25, true, -7};
        }}},
      {"batch_norm_train",
       {{x, tt({4}), tt({4}), tt({4}), tt({4})},
        [](Attrs& a) {
          std::get<BatchNormTrainAttrs>(a) = {1e-3, 0.25};
        }}},
      {"drop_path",
       {{x, tt({}, DType::I64)},
        [](Attrs& a) {
          std::get<DropoutAttrs>(a) = {0.1, true, 3};
        }}},
      {"reduce_sum",
       {{x},
        [](Attrs& a) {
          std::get<ReduceAttrs>(a) = {{0, -1}, true};
        }}},
      {"conv2d_backward_data",
       {{t4(kBatch, 6, 4, 8), t4(6, 2, 3, 3, Layout::OIHW)},
        [](Attrs& a) {
          std::get<Conv2dBackwardDataAttrs>(a) = {{2, 1}, {1, 1, 1, 1}, {1, 1}, 2, {8, 8}};
        }}},
      {"conv2d_backward_weight",
       {{x, t4(kBatch, 6, 4, 8)},
        [](Attrs& a) {
          std::get<Conv2dBackwardWeightAttrs>(a) = {{2, 1}, {1, 1, 1, 1}, {1, 1}, 2, {3, 3}};
        }}},
      {"batch_norm_backward", {{x, x, tt({4}), tt({4}), tt({4})}}},
      {"max_pool2d_backward",
       {{t4(kBatch, 4, 4, 4), x},
        [](Attrs& a) {
          auto& p = std::get<MaxPool2dAttrs>(a);
          p.kernel = {2, 2};
          p.stride = {2, 2};
        }}},
      {"avg_pool2d_backward",
       {{t4(kBatch, 4, 4, 4)},
        [](Attrs& a) {
          auto& p = std::get<AvgPool2dBackwardAttrs>(a);
          p.kernel = {3, 3};
          p.stride = {2, 2};
          p.pad = {1, 1, 1, 1};
          p.count_include_pad = false;
          p.input_size = {8, 8};
        }}},
      {"relu_backward", {{x, x}}},
      {"clip_backward",
       {{x, x},
        [](Attrs& a) {
          std::get<ClipAttrs>(a) = {0.0, 6.0};
        }}},
      {"swish_backward", {{x, x}}},
      {"hardswish_backward", {{x, x}}},
      {"hardsigmoid_backward",
       {{x, x},
        [](Attrs& a) {
          std::get<HardSigmoidAttrs>(a) = {0.2, 0.5};
        }}},
      {"softmax_cross_entropy",
       {{tt({kBatch, 10}), tt({kBatch}, DType::I64)},
        [](Attrs& a) { std::get<CrossEntropyAttrs>(a).label_smoothing = 0.1; }}},
      {"softmax_cross_entropy_backward", {{tt({}), tt({3, 10}), tt({3, 10})}}},
      {"count_correct", {{tt({kBatch, 10}), tt({kBatch}, DType::I64)}}},
      {"sgd_update",
       {{tt({6, 4}), tt({6, 4}), tt({}), tt({6, 4})},
        [](Attrs& a) {
          std::get<SgdAttrs>(a) = {0.9, 1e-4, true};
        }}},
      {"rmsprop_update",
       {{tt({6, 4}), tt({6, 4}), tt({}), tt({6, 4})},
        [](Attrs& a) {
          std::get<RmsPropAttrs>(a) = {0.95, 1e-3, 0.0, 1e-5, false};
        }}},
      {"adamw_update",
       {{tt({6, 4}), tt({6, 4}), tt({}), tt({6, 4}), tt({6, 4}), tt({})},
        [](Attrs& a) {
          std::get<AdamWAttrs>(a) = {0.8, 0.99, 1e-6, 0.05};
        }}},
      {"ema_update",
       {{tt({6, 4}), tt({6, 4})},
        [](Attrs& a) {
          std::get<EmaAttrs>(a) = {0.999};
        }}},
      {"global_norm", {{tt({6, 4}), tt({3}), tt({})}}},
      {"constant",
       {{},
        [](Attrs& a) {
          std::get<ConstantAttrs>(a) = {{1, 2.5, -3, 1e300, 5e-324, -0.0}, {2, 3}, DType::F64};
        }}},
  };
  return cases;
}

// Adds one node of `op` (from opCases) to `g`, with fresh declarations for its operands.
Node* addCase(Graph& g, const std::string& op, int k, WeightStore* store) {
  const OpCase& c = opCases().at(op);
  std::vector<Value*> operands;
  for (size_t i = 0; i < c.operands.size(); ++i) {
    std::string name = fmt::format("{}{}.in{}", op, k, i);
    Loc loc{"model.py", k + 1, static_cast<int>(i) + 1};
    const TensorType& t = c.operands[i];
    if (i == 0 || !t.shape.isStatic()) {
      operands.push_back(g.addInput(name, t, loc));
      continue;
    }
    static constexpr ValueKind kKinds[] = {ValueKind::Param, ValueKind::Buffer, ValueKind::Const};
    operands.push_back(g.addWeight(kKinds[i % 3], name, t, loc));
    if (store) {
      Tensor data(t.dtype, t.shape, t.layout);
      for (int64_t e = 0; e < data.numElements(); ++e)
        data.data<float>()[e] = static_cast<float>(e) * 0.25f;
      store->set(name, data);
    }
  }
  OpKind kind = *parseOpKind(op);
  Attrs attrs = defaultAttrs(kind);
  c.setAttrs(attrs);
  auto node = g.createNode(kind, operands, attrs, Loc{"models/test.cpp", 100 + k, 7});
  EXPECT_TRUE(node.isOk()) << op << ": " << node.message();
  if (!node.isOk()) return nullptr;
  (*node)->result(0)->setName(fmt::format("{}{}.out", op, k));
  for (Value* r : (*node)->results()) g.addOutput(r);
  return *node;
}

void expectSameValue(const Value* a, const Value* b, std::string_view ctx) {
  EXPECT_EQ(a->kind(), b->kind()) << ctx;
  EXPECT_EQ(a->name(), b->name()) << ctx;
  EXPECT_EQ(a->type(), b->type()) << ctx << ": " << a->type().str() << " vs " << b->type().str();
  EXPECT_EQ(a->loc(), b->loc()) << ctx;
}

// Structural equality: declarations, nodes (op, operands by correspondence, attributes,
// location, results), outputs, and the weight store bytewise.
void expectSameModule(const Module& a, const Module& b) {
  const Graph& ga = a.graph;
  const Graph& gb = b.graph;
  EXPECT_EQ(ga.name(), gb.name());
  std::unordered_map<const Value*, const Value*> map;
  ASSERT_EQ(ga.inputs().size(), gb.inputs().size());
  for (size_t i = 0; i < ga.inputs().size(); ++i) {
    expectSameValue(ga.inputs()[i], gb.inputs()[i], fmt::format("input {}", i));
    map[ga.inputs()[i]] = gb.inputs()[i];
  }
  ASSERT_EQ(ga.weights().size(), gb.weights().size());
  for (size_t i = 0; i < ga.weights().size(); ++i) {
    expectSameValue(ga.weights()[i], gb.weights()[i], fmt::format("weight {}", i));
    map[ga.weights()[i]] = gb.weights()[i];
  }
  ASSERT_EQ(ga.numNodes(), gb.numNodes());
  auto ib = gb.nodes().begin();
  for (const auto& na : ga.nodes()) {
    const Node& nb = **ib++;
    std::string ctx = std::string(na->opName());
    EXPECT_EQ(na->kind(), nb.kind()) << ctx;
    EXPECT_TRUE(attrsEqual(na->attrs(), nb.attrs()))
        << ctx << ": " << printAttrs(na->attrs()) << " vs " << printAttrs(nb.attrs());
    EXPECT_EQ(na->loc(), nb.loc()) << ctx;
    ASSERT_EQ(na->numOperands(), nb.numOperands()) << ctx;
    for (size_t i = 0; i < na->numOperands(); ++i)
      EXPECT_EQ(map.at(na->operand(i)), nb.operand(i)) << ctx << " operand " << i;
    ASSERT_EQ(na->numResults(), nb.numResults()) << ctx;
    for (size_t i = 0; i < na->numResults(); ++i) {
      expectSameValue(na->result(i), nb.result(i), ctx + " result");
      map[na->result(i)] = nb.result(i);
    }
  }
  ASSERT_EQ(ga.outputs().size(), gb.outputs().size());
  for (size_t i = 0; i < ga.outputs().size(); ++i)
    EXPECT_EQ(map.at(ga.outputs()[i]), gb.outputs()[i]) << "output " << i;
  PrintOptions withLocs{.debugLocations = true};
  EXPECT_EQ(printGraph(ga, withLocs), printGraph(gb, withLocs));

  ASSERT_EQ(a.weights.size(), b.weights.size());
  for (const auto& [name, ta] : a.weights.entries()) {
    const Tensor* tb = b.weights.find(name);
    ASSERT_NE(tb, nullptr) << name;
    EXPECT_EQ(ta.type(), tb->type()) << name;
    ASSERT_EQ(ta.nbytes(), tb->nbytes()) << name;
    if (ta.nbytes()) {
      EXPECT_EQ(std::memcmp(ta.raw(), tb->raw(), ta.nbytes()), 0) << name;
    }
  }
}

Module roundTrip(const Module& m) {
  std::string bytes = serializeModule(m);
  auto back = parseModule(bytes, "mem.kpb");
  EXPECT_TRUE(back.isOk()) << back.message();
  return back.isOk() ? std::move(*back) : Module{};
}

TEST(KpbTest, EveryOpRoundTrips) {
  for (const OpInfo& info : allOps()) {
    std::string op(info.name);
    ASSERT_TRUE(opCases().count(op)) << "add a case for the new op '" << op << "' to opCases()";
    Module m(Graph("single_" + op));
    ASSERT_NE(addCase(m.graph, op, 0, &m.weights), nullptr);
    ASSERT_TRUE(verify(m.graph).isOk()) << op << ": " << verify(m.graph).message();
    Module back = roundTrip(m);
    SCOPED_TRACE(op);
    expectSameModule(m, back);
  }
}

TEST(KpbTest, WholeGraphWithWeightsOfEveryDTypeRoundTripsThroughAFile) {
  Module m(Graph("everything"));
  int k = 0;
  for (const OpInfo& info : allOps()) addCase(m.graph, std::string(info.name), k++, &m.weights);
  // Chain two nodes so operands refer to results, not only to declarations.
  Value* y = m.graph.outputs()[0];
  auto relu = m.graph.createNode(OpKind::Relu, {y}, NoAttrs{}, Loc{"chain.cpp", 1, 1});
  ASSERT_TRUE(relu.isOk()) << relu.message();
  m.graph.addOutput((*relu)->result(0));
  // Store entries of every dtype and several layouts, scalar and empty ones, including
  // entries no declaration binds (a store may carry extra tensors).
  std::mt19937 rng(5);
  auto fill = [&](Tensor t) {
    for (size_t i = 0; i < t.nbytes(); ++i)
      t.raw()[i] = std::byte{static_cast<unsigned char>(rng())};
    return t;
  };
  m.weights.set("x.f64", fill(Tensor(DType::F64, Shape{3, 2})));
  m.weights.set("x.f16", fill(Tensor(DType::F16, Shape{5})));
  m.weights.set("x.bf16", fill(Tensor(DType::BF16, Shape{2, 2, 2})));
  m.weights.set("x.i64", fill(Tensor(DType::I64, Shape{})));
  m.weights.set("x.i32", fill(Tensor(DType::I32, Shape{0, 4})));
  m.weights.set("x.i8", fill(Tensor(DType::I8, Shape{7})));
  m.weights.set("x.u8", fill(Tensor(DType::U8, Shape{1, 1, 1, 1, 3})));
  m.weights.set("x.bool", Tensor(DType::Bool, Shape{4}));
  m.weights.set("x.hwio", fill(Tensor(DType::F32, Shape{4, 2, 3, 3}, Layout::HWIO)));
  m.weights.set("x.blocked", fill(Tensor(DType::F32, Shape{1, 16, 2, 2}, Layout::NChw16c)));
  ASSERT_TRUE(verify(m.graph).isOk()) << verify(m.graph).message();

  fs::path dir = fs::temp_directory_path() / fmt::format("kiln_kpb_{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string path = (dir / "m.kpb").string();
  ASSERT_TRUE(writeKpb(path, m).isOk());
  ASSERT_TRUE(writeKpb(path, m).isOk());  // overwrite
  auto back = readKpb(path);
  ASSERT_TRUE(back.isOk()) << back.message();
  expectSameModule(m, *back);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{"m.kpb"}) << "a temporary file was left behind";
  // Reading renumbers value ids in declaration order; from then on the bytes are stable.
  std::string once = serializeModule(*back);
  EXPECT_TRUE(once == serializeModule(roundTrip(*back))) << "serialization is not a fixpoint";
  fs::remove_all(dir);
}

// Random chains over ops whose rules accept arbitrary attribute values, with random names,
// locations and attribute values (full-range int64 seeds, odd doubles).
TEST(KpbTest, RandomGraphsRoundTrip) {
  for (uint32_t seed = 0; seed < 40; ++seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    auto anyDouble = [&]() {
      const double special[] = {
          0.0, -0.0, 1e-310, 1e308, 0.1, -2.5, std::numeric_limits<double>::infinity()};
      return pick(3) == 0
                 ? special[pick(std::size(special))]
                 : std::ldexp(static_cast<double>(rng() >> 11), static_cast<int>(pick(80)) - 60);
    };
    Module m(Graph(fmt::format("random{}", seed)));
    std::vector<Value*> pool{m.graph.addInput("x", t4(kBatch, 4, 8, 8), Loc{"in.kir", 1, 1})};
    for (int i = 0; i < 25; ++i) {
      Value* a = pool[pick(pool.size())];
      Value* b = pool[pick(pool.size())];
      Loc loc = pick(4) == 0 ? Loc{}
                             : Loc{fmt::format("f{}.cpp", pick(3)), static_cast<int>(pick(1000)),
                                   static_cast<int>(pick(80))};
      Expected<Node*> n = Status::error("unset");
      switch (pick(7)) {
        case 0:
          n = m.graph.createNode(OpKind::Add, {a, b}, NoAttrs{}, loc);
          break;
        case 1:
          n = m.graph.createNode(OpKind::Tanh, {a}, NoAttrs{}, loc);
          break;
        case 2:
          n = m.graph.createNode(OpKind::HardSigmoid, {a},
                                 HardSigmoidAttrs{anyDouble(), anyDouble()}, loc);
          break;
        case 3: {
          double lo = anyDouble(), hi = anyDouble();
          n = m.graph.createNode(OpKind::Clip, {a}, ClipAttrs{std::min(lo, hi), std::max(lo, hi)},
                                 loc);
          break;
        }
        case 4:
          n = m.graph.createNode(OpKind::Dropout, {a},
                                 DropoutAttrs{0.5 * (static_cast<double>(pick(1000)) / 1000),
                                              pick(2) == 0, static_cast<int64_t>(rng())},
                                 loc);
          break;
        case 5:
          n = m.graph.createNode(OpKind::Softmax, {a}, AxisAttrs{static_cast<int64_t>(pick(8)) - 4},
                                 loc);
          break;
        case 6:
          n = m.graph.createNode(OpKind::Mul, {a, b}, NoAttrs{}, loc);
          break;
      }
      ASSERT_TRUE(n.isOk()) << n.message();
      if (pick(2) == 0) (*n)->result(0)->setName(fmt::format("v{}.{}", i, pick(100)));
      pool.push_back((*n)->result(0));
    }
    for (size_t i = 0; i < 3; ++i) m.graph.addOutput(pool[1 + pick(pool.size() - 1)]);
    ASSERT_TRUE(verify(m.graph).isOk()) << verify(m.graph).message();
    SCOPED_TRACE(fmt::format("seed {}", seed));
    expectSameModule(m, roundTrip(m));
  }
}

// ---- errors ----

// A small valid module as a protobuf, for tests that corrupt one field.
pb::Module smallProto() {
  Module m(Graph("small"));
  addCase(m.graph, "conv2d", 0, &m.weights);
  Value* y = m.graph.outputs()[0];
  auto r = m.graph.createNode(OpKind::Relu, {y}, NoAttrs{});
  EXPECT_TRUE(r.isOk());
  m.graph.addOutput((*r)->result(0));
  pb::Module p;
  EXPECT_TRUE(p.ParseFromString(serializeModule(m)));
  return p;
}

std::string parseError(const pb::Module& p) {
  auto r = parseModule(p.SerializeAsString(), "x.kpb");
  return r.isOk() ? "<parsed fine>" : r.message();
}

TEST(KpbTest, NewerFormatVersionIsRejected) {
  pb::Module p = smallProto();
  EXPECT_EQ(parseError(p), "<parsed fine>");
  p.set_format_version(2);
  EXPECT_EQ(parseError(p),
            "x.kpb: format version 2 is newer than this kiln supports (1); upgrade kiln");
}

TEST(KpbTest, CorruptFilesAreRejected) {
  auto r = parseModule("this is not a protobuf \xff\xff\xff\xff", "x.kpb");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(),
            "x.kpb: not a kiln module (the protobuf does not parse; file truncated or corrupt?)");
  r = parseModule("", "x.kpb");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(), "x.kpb: not a kiln module (no format version; is this a .kpb file?)");
  std::string bytes = smallProto().SerializeAsString();
  for (size_t cut : {bytes.size() - 1, bytes.size() / 2, size_t{3}}) {
    r = parseModule(std::string_view(bytes).substr(0, cut), "x.kpb");
    EXPECT_FALSE(r.isOk()) << "truncated to " << cut;
  }
  r = readKpb("no_such_file.kpb");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(), "cannot open 'no_such_file.kpb': No such file or directory");
  Status s = writeKpb("/no/such/dir/m.kpb", Module{});
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "cannot write '/no/such/dir/m.kpb': No such file or directory");
}

struct Invalid {
  std::string name;
  std::function<void(pb::Module&)> corrupt;
  std::string expected;  // substring of the message
};

TEST(KpbTest, InvalidModulesAreRejectedWithClearMessages) {
  // smallProto: inputs [x (id 0)], weights [w (1), b (2)], nodes [conv2d -> 3, relu -> 4].
  auto node = [](pb::Module& p, int i) { return p.mutable_graph()->mutable_nodes(i); };
  const std::vector<Invalid> cases = {
      {"unknown op", [&](pb::Module& p) { node(p, 1)->set_op("relu7"); },
       "node 1: unknown op 'relu7'"},
      {"undefined operand", [&](pb::Module& p) { node(p, 1)->set_operands(0, 999); },
       "node 1 (relu): operand 0 refers to undefined value id 999"},
      {"forward reference",
       [&](pb::Module& p) { p.mutable_graph()->mutable_nodes()->SwapElements(0, 1); },
       "node 0 (relu): operand 0 (value id 3) is defined after its use"},
      {"duplicate id", [&](pb::Module& p) { node(p, 1)->mutable_results(0)->set_id(1); },
       "node 1 (relu): result 0: value id 1 is declared more than once"},
      {"wrong arity", [&](pb::Module& p) { node(p, 1)->add_operands(0); },
       "node 1 (relu): has 2 operands, the op takes 1"},
      {"too few operands",
       [&](pb::Module& p) {
         node(p, 0)->mutable_operands()->RemoveLast();
         node(p, 0)->mutable_operands()->RemoveLast();
       },
       "node 0 (conv2d): has 1 operands, the op takes 2 to 4"},
      {"attr of wrong kind", [&](pb::Module& p) { node(p, 0)->mutable_attrs(0)->set_i(2); },
       "node 0 (conv2d): attribute 'stride' must be a list of 2 integers"},
      {"attr list of wrong length",
       [&](pb::Module& p) { node(p, 0)->mutable_attrs(1)->mutable_ints()->add_values(1); },
       "attribute 'pad' must be a list of 4 integers"},
      {"unknown attr",
       [&](pb::Module& p) {
         auto* a = node(p, 1)->add_attrs();
         a->set_name("alpha");
         a->set_f(1);
       },
       "node 1 (relu): unknown attribute 'alpha'"},
      {"duplicate attr", [&](pb::Module& p) { *node(p, 0)->add_attrs() = node(p, 0)->attrs(3); },
       "attribute 'groups' is given twice"},
      {"bad attr value", [&](pb::Module& p) { node(p, 0)->mutable_attrs(3)->set_i(0); },
       "conv2d: groups must be >= 1, got 0"},
      {"wrong result type",
       [&](pb::Module& p) { node(p, 1)->mutable_results(0)->mutable_type()->set_dims(1, 5); },
       "is f32[N,5,4,7]{nchw}, expected f32[N,6,4,7]{nchw}"},
      {"missing result",
       [&](pb::Module& p) {
         node(p, 1)->clear_results();
         p.mutable_graph()->mutable_outputs()->RemoveLast();
       },
       "0 results"},
      {"unknown dtype",
       [&](pb::Module& p) {
         p.mutable_graph()->mutable_inputs(0)->mutable_type()->set_dtype("f128");
       },
       "input 0 'conv2d0.in0': unknown dtype 'f128'"},
      {"layout of another rank",
       [&](pb::Module& p) {
         p.mutable_graph()->mutable_weights(1)->mutable_type()->set_layout("nchw");
       },
       "weight 1 'conv2d0.in2': layout {nchw} is for rank 4, the shape has rank 1"},
      {"bad dim",
       [&](pb::Module& p) {
         p.mutable_graph()->mutable_inputs(0)->mutable_type()->set_dims(2, -7);
       },
       "input 0 'conv2d0.in0': dimension -7 is negative"},
      {"huge dim",
       [&](pb::Module& p) {
         p.mutable_graph()->mutable_inputs(0)->mutable_type()->set_dims(2, int64_t{1} << 50);
       },
       "dimension 1125899906842624 exceeds the limit 2^40"},
      {"too many elements",
       [&](pb::Module& p) {
         auto* dims = p.mutable_graph()->mutable_inputs(0)->mutable_type()->mutable_dims();
         dims->Set(1, int64_t{1} << 20);
         dims->Set(2, int64_t{1} << 20);
         dims->Set(3, 2);
       },
       "has more than 2^40 elements"},
      {"input of wrong kind",
       [&](pb::Module& p) { p.mutable_graph()->mutable_inputs(0)->set_kind(pb::VALUE_KIND_PARAM); },
       "input 0 'conv2d0.in0': is not of kind input"},
      {"weight of wrong kind",
       [&](pb::Module& p) {
         p.mutable_graph()->mutable_weights(0)->set_kind(static_cast<pb::ValueKind>(42));
       },
       "weight 0 'conv2d0.in1': kind must be param, buffer or const"},
      {"duplicate name",
       [&](pb::Module& p) { node(p, 1)->mutable_results(0)->set_name("conv2d0.in0"); },
       "%conv2d0.in0 is defined more than once"},
      {"undefined output", [&](pb::Module& p) { p.mutable_graph()->add_outputs(77); },
       "output refers to undefined value id 77"},
      {"tensor size mismatch",
       [&](pb::Module& p) { p.mutable_weights(0)->mutable_data()->pop_back(); },
       "weight tensor 'conv2d0.in1': f32[6,4,3,3]{oihw} needs 864 data bytes, the file has 863"},
      {"tensor with N", [&](pb::Module& p) { p.mutable_weights(0)->set_dims(0, -1); },
       "weight tensor 'conv2d0.in1': has a symbolic dimension"},
      {"duplicate tensor", [&](pb::Module& p) { *p.add_weights() = p.weights(0); },
       "weight tensor 'conv2d0.in1' appears twice"},
      {"no version", [&](pb::Module& p) { p.clear_format_version(); }, "no format version"},
  };
  for (const Invalid& c : cases) {
    pb::Module p = smallProto();
    c.corrupt(p);
    std::string msg = parseError(p);
    EXPECT_EQ(msg.rfind("x.kpb: ", 0), 0u) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.name << ": " << msg;
  }
}

}  // namespace
}  // namespace kiln::ir
