// Property: for random valid graphs built from the op table, parse(print(g)) reproduces g and
// print(parse(print(g))) == print(g), with and without debug locations.
#include <gtest/gtest.h>

#include "ir/graph.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "tests/ir/kir_test_util.h"

namespace kiln::ir {
namespace {

constexpr int kSeeds = 500;

/// Everything the text form carries, compared value by value.
void expectSameGraph(const Graph& a, const Graph& b, bool withLocs) {
  EXPECT_EQ(a.name(), b.name());
  auto sameDecls = [&](const std::vector<Value*>& x, const std::vector<Value*>& y) {
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(x[i]->kind(), y[i]->kind());
      EXPECT_EQ(x[i]->name(), y[i]->name());
      EXPECT_EQ(x[i]->type(), y[i]->type());
      if (withLocs) {
        EXPECT_EQ(x[i]->loc(), y[i]->loc());
      }
    }
  };
  sameDecls(a.inputs(), b.inputs());
  sameDecls(a.weights(), b.weights());
  ASSERT_EQ(a.numNodes(), b.numNodes());
  for (auto ia = a.nodes().begin(), ib = b.nodes().begin(); ia != a.nodes().end(); ++ia, ++ib) {
    const Node& na = **ia;
    const Node& nb = **ib;
    EXPECT_EQ(na.kind(), nb.kind());
    // Text equality of the attributes: NaN fields compare unequal under attrsEqual.
    EXPECT_EQ(printAttrs(na.attrs()), printAttrs(nb.attrs()));
    EXPECT_EQ(na.attrs().index(), nb.attrs().index());
    ASSERT_EQ(na.numOperands(), nb.numOperands());
    for (size_t i = 0; i < na.numOperands(); ++i) {
      EXPECT_EQ(na.operand(i)->name(), nb.operand(i)->name());
      EXPECT_EQ(na.operand(i)->type(), nb.operand(i)->type());
    }
    sameDecls(na.results(), nb.results());
    if (withLocs) {
      EXPECT_EQ(na.loc(), nb.loc());
    }
  }
  ASSERT_EQ(a.outputs().size(), b.outputs().size());
  for (size_t i = 0; i < a.outputs().size(); ++i)
    EXPECT_EQ(a.outputs()[i]->name(), b.outputs()[i]->name());
}

TEST(KirRoundTripProperty, RandomGraphs) {
  for (int seed = 0; seed < kSeeds; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    kirtest::RandomGraphGen gen(seed);
    Graph g = gen.build(1 + seed % 40);
    if (::testing::Test::HasFatalFailure()) return;
    for (bool withLocs : {false, true}) {
      PrintOptions options{.debugLocations = withLocs};
      std::string text = printGraph(g, options);
      Expected<Graph> parsed = parseGraph(text, "random.kir");
      ASSERT_TRUE(parsed.isOk()) << parsed.message() << "\n" << text;
      EXPECT_EQ(printGraph(*parsed, options), text);
      Status verified = verify(*parsed);
      EXPECT_TRUE(verified.isOk()) << verified.message() << "\n" << text;
      expectSameGraph(g, *parsed, withLocs);
      if (::testing::Test::HasFailure()) return;  // one readable failure, not hundreds
    }
  }
}

TEST(KirRoundTripProperty, LocationsWithoutSuffixAreKirLines) {
  kirtest::RandomGraphGen gen(7);
  Graph g = gen.build(25);
  std::string text = printGraph(g);
  Expected<Graph> parsed = parseGraph(text, "lines.kir");
  ASSERT_TRUE(parsed.isOk()) << parsed.message();
  // Line 1 is `graph @name {`, then one line per declaration, then one per node.
  int line = 2;
  for (const Value* v : parsed->inputs()) EXPECT_EQ(v->loc(), (Loc{"lines.kir", line++, 3}));
  for (const Value* v : parsed->weights()) EXPECT_EQ(v->loc(), (Loc{"lines.kir", line++, 3}));
  for (const auto& n : parsed->nodes()) EXPECT_EQ(n->loc(), (Loc{"lines.kir", line++, 3}));
}

TEST(KirRoundTripProperty, GeneratorCoversEveryOp) {
  // The property test means little if the generator never reaches some op.
  std::vector<bool> seen(kNumOps, false);
  for (int seed = 0; seed < kSeeds; ++seed) {
    kirtest::RandomGraphGen gen(seed);
    Graph g = gen.build(1 + seed % 40);
    for (const auto& n : g.nodes()) seen[static_cast<size_t>(n->kind())] = true;
  }
  for (const OpInfo& op : allOps())
    EXPECT_TRUE(seen[static_cast<size_t>(op.kind)]) << "never generated: " << op.name;
}

}  // namespace
}  // namespace kiln::ir
