// Bounded fuzzing of the .kir parser: seeded byte mutations (flip, delete, insert, truncate,
// splice) of valid texts. The parser must return a located error or a graph, never crash
// (CI runs this under ASan/UBSan), and whatever it accepts must print and re-parse exactly.
#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ir/parser.h"
#include "ir/printer.h"
#include "tests/ir/kir_test_util.h"

namespace kiln::ir {
namespace {

constexpr int kIterations = 20000;

/// Fragments that steer mutations toward the grammar's corners.
const std::vector<std::string>& dictionary() {
  static const std::vector<std::string> words = {"%",
                                                 "@",
                                                 "{",
                                                 "}",
                                                 "[",
                                                 "]",
                                                 "(",
                                                 ")",
                                                 ",",
                                                 ":",
                                                 "=",
                                                 "-",
                                                 "\"",
                                                 "\\",
                                                 "//",
                                                 "\n",
                                                 "N",
                                                 "0",
                                                 "-1",
                                                 "1e999",
                                                 "99999999999999999999",
                                                 "9223372036854775807",
                                                 "1099511627776",
                                                 "nan",
                                                 "-inf",
                                                 "1.5",
                                                 "true",
                                                 "loc(\"f\":1:2)",
                                                 "%\"q\\x01\"",
                                                 "f64",
                                                 "nChw16c",
                                                 "{}",
                                                 "[]",
                                                 "input",
                                                 "param %p : ",
                                                 "output ",
                                                 "conv2d",
                                                 "split",
                                                 "concat",
                                                 "constant()",
                                                 "reshape",
                                                 "%0",
                                                 "%1, %2 = ",
                                                 "{axis=",
                                                 "sizes=[",
                                                 "\xff",
                                                 std::string(1, '\0')};
  return words;
}

std::vector<std::string> seedTexts() {
  std::vector<std::string> seeds = {R"(graph @block {
  input %x : f32[N,64,56,56]{nchw}
  param %conv1.weight : f32[64,64,3,3]{oihw}
  param %bn.weight : f32[64]{x}
  param %bn.bias : f32[64]{x}
  buffer %bn.mean : f32[64]{x}
  buffer %bn.var : f32[64]{x}
  %0 = conv2d(%x, %conv1.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,64,56,56]{nchw}
  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.mean, %bn.var) {epsilon=1e-05} : f32[N,64,56,56]{nchw}
  %2 = add(%1, %x) : f32[N,64,56,56]{nchw}
  %a, %b = split(%2) {axis=1, sizes=[32,32]} : f32[N,32,56,56]{nchw}, f32[N,32,56,56]{nhwc}
  %c = constant() {value=[0.5], shape=[], dtype=f32} : f32[]{}
  %"out put" = mul(%a, %c) : f32[N,32,56,56]{nchw} loc("models/resnet.cpp":57:14)
  output %"out put", %b
}
)"};
  for (uint64_t seed = 0; seed < 6; ++seed) {
    kirtest::RandomGraphGen gen(1000 + seed);
    Graph g = gen.build(12);
    seeds.push_back(printGraph(g, {.debugLocations = seed % 2 == 1}));
  }
  return seeds;
}

/// The message after its `fuzz.kir:line:col: ` prefix; nullopt when it has none.
std::optional<std::string_view> afterLocation(std::string_view msg) {
  constexpr std::string_view kFile = "fuzz.kir:";
  if (!msg.starts_with(kFile)) return std::nullopt;
  msg.remove_prefix(kFile.size());
  for (int field = 0; field < 2; ++field) {  // line, then column
    size_t digits = 0;
    while (digits < msg.size() && msg[digits] >= '0' && msg[digits] <= '9') ++digits;
    if (digits == 0 || digits == msg.size() || msg[digits] != ':') return std::nullopt;
    msg.remove_prefix(digits + 1);
  }
  if (!msg.starts_with(' ')) return std::nullopt;
  return msg.substr(1);
}

std::string mutate(std::string text, std::mt19937_64& rng) {
  auto below = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n)(rng); };
  const int rounds = 1 + static_cast<int>(below(3));
  for (int r = 0; r < rounds; ++r) {
    const size_t pos = below(text.size());
    switch (below(5)) {
      case 0:  // flip one bit
        if (pos < text.size()) text[pos] = static_cast<char>(text[pos] ^ (1 << below(7)));
        break;
      case 1:  // delete a short range
        text.erase(pos, below(12));
        break;
      case 2:  // insert a random byte
        text.insert(pos, 1, static_cast<char>(below(255)));
        break;
      case 3:  // insert a grammar fragment
        text.insert(pos, dictionary()[below(dictionary().size() - 1)]);
        break;
      case 4:  // truncate
        text.resize(pos);
        break;
      default:  // copy a range elsewhere
      {
        const size_t from = below(text.size());
        text.insert(pos, text.substr(from, below(40)));
        break;
      }
    }
  }
  return text;
}

TEST(KirFuzz, MutatedTextsNeverCrash) {
  const std::vector<std::string> seeds = seedTexts();
  std::mt19937_64 rng(20240611);
  int accepted = 0;
  for (int i = 0; i < kIterations; ++i) {
    const std::string text = mutate(seeds[i % seeds.size()], rng);
    Expected<Graph> g = parseGraph(text, "fuzz.kir");
    if (!g.isOk()) {
      // Every error is located in the input, `fuzz.kir:line:col: message` (the CLI adds the
      // "error: " prefix, so the parser must not).
      std::optional<std::string_view> rest = afterLocation(g.message());
      ASSERT_TRUE(rest) << g.message() << "\n" << text;
      ASSERT_FALSE(rest->starts_with("error")) << g.message();
      continue;
    }
    ++accepted;
    for (bool withLocs : {false, true}) {
      PrintOptions options{.debugLocations = withLocs};
      const std::string printed = printGraph(*g, options);
      Expected<Graph> again = parseGraph(printed, "fuzz.kir");
      ASSERT_TRUE(again.isOk()) << again.message() << "\nfrom\n" << text;
      ASSERT_EQ(printGraph(*again, options), printed) << "from\n" << text;
    }
  }
  // Some mutants (in comments, names, numbers) stay valid; all of them failing would mean
  // the seeds are broken.
  EXPECT_GT(accepted, kIterations / 100);
}

TEST(KirFuzz, SeedsAreValid) {
  for (const std::string& text : seedTexts()) {
    Expected<Graph> g = parseGraph(text, "seed.kir");
    ASSERT_TRUE(g.isOk()) << g.message() << "\n" << text;
  }
}

}  // namespace
}  // namespace kiln::ir
