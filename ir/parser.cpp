// The .kir parser: recursive descent over ir/lexer.h tokens. Attribute values are parsed by
// walking each attribute struct's `fields` list, so ops and attributes need no code here.
// Every node is checked against the op table's arity and shape rule as it is read.
#include "ir/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>
#include <vector>

#include "ir/lexer.h"

namespace kiln::ir {

namespace {

using kir::Token;
using kir::TokKind;

std::string allDTypeNames() {
  std::string out;
#define KILN_DTYPE_NAME(e, s, b) out += out.empty() ? s : ", " s;
  KILN_DTYPES(KILN_DTYPE_NAME)
#undef KILN_DTYPE_NAME
  return out;
}

std::string allLayoutNames() {
  std::string out;
#define KILN_LAYOUT_NAME(e, s, r, o, bd, bs) \
  if (std::string_view(s).size()) out += out.empty() ? s : ", " s;
  KILN_LAYOUTS(KILN_LAYOUT_NAME)
#undef KILN_LAYOUT_NAME
  return out;
}

std::optional<int64_t> toInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> toDouble(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

/// `{nchw}`, `{}` for the scalar layout: how a layout appears inside a type.
std::string braced(Layout l) {
  return fmt::format("{{{}}}", layoutName(l));
}

/// What the parser knows about an attribute while reading its value.
struct AttrCtx {
  std::string_view op;
  std::string_view attr;
  std::string_view what;  // "an integer", "a list of 2 integers", ...
};

class Parser {
 public:
  Parser(std::string_view text, std::string_view file) : file_(file), toks_(kir::lex(text)) {}

  Expected<Graph> parseGraph() {
    if (!isIdent("graph")) return expected("'graph @name {'", /*atToken=*/true);
    advance();
    if (!is(TokKind::Global)) return expected("the graph name '@name'");
    Graph g(tok().str);
    g_ = &g;
    std::string_view graphName = tok().text;
    advance();
    KILN_TRY(expect(TokKind::LBrace, "'{' after the graph name"));
    while (!is(TokKind::RBrace)) {
      if (isIdent("input") || isIdent("param") || isIdent("buffer") || isIdent("const")) {
        KILN_TRY(parseDeclaration());
      } else if (isIdent("output")) {
        KILN_TRY(parseOutput());
      } else if (is(TokKind::Value)) {
        KILN_TRY(parseNode());
      } else if (is(TokKind::Eof)) {
        return expected(fmt::format("'}}' to close graph {}", graphName));
      } else {
        return expected(
            "a statement (input, param, buffer, const, output or %result = op(...)) "
            "or '}'",
            /*atToken=*/true);
      }
    }
    advance();
    if (!is(TokKind::Eof))
      return expected("end of file after the graph's closing '}'", /*atToken=*/true);
    g_ = nullptr;
    return g;
  }

  Expected<TensorType> parseTypeOnly() {
    KILN_ASSIGN_OR_RETURN(TensorType t, parseType());
    if (!is(TokKind::Eof)) return expected("end of the type");
    return t;
  }

 private:
  // ---- tokens and errors ----
  const Token& tok() const { return toks_[pos_]; }
  bool is(TokKind k) const { return tok().kind == k; }
  bool isIdent(std::string_view s) const { return is(TokKind::Ident) && tok().text == s; }
  void advance() {
    if (is(TokKind::Eof) || is(TokKind::Error)) return;
    prevEndLine_ = tok().endLine;
    prevEndCol_ = tok().endCol;
    ++pos_;
  }
  bool consume(TokKind k) {
    if (!is(k)) return false;
    advance();
    return true;
  }
  Loc locOf(const Token& t) const { return Loc{std::string(file_), t.line, t.col}; }
  Status errorAt(const Loc& loc, std::string_view msg) const { return error(loc, "{}", msg); }
  Status errorAt(const Token& t, std::string_view msg) const { return errorAt(locOf(t), msg); }

  /// "expected X" at the current token. A lexical error reports itself instead. When the
  /// current token starts a later line, the statement was cut short: the error points just
  /// past the previous token unless `atToken` (for what starts a statement).
  Status expected(std::string_view what, bool atToken = false) const {
    const Token& t = tok();
    if (t.kind == TokKind::Error) return errorAt(t, t.str);
    Loc loc = locOf(t);
    bool lineEnded = !atToken && pos_ > 0 && t.line > prevEndLine_;
    if (lineEnded) loc = Loc{std::string(file_), prevEndLine_, prevEndCol_};
    if (t.kind == TokKind::Eof)
      return errorAt(loc, fmt::format("unexpected end of file, expected {}", what));
    if (lineEnded) return errorAt(loc, fmt::format("expected {} at end of line", what));
    return errorAt(loc, fmt::format("expected {}, got '{}'", what, t.text));
  }
  Status expect(TokKind k, std::string_view what) {
    if (!is(k)) return expected(what);
    advance();
    return Status::ok();
  }

  // ---- symbols ----
  struct Def {
    Value* value;
    int line;
  };
  std::unordered_map<std::string, Def>& table(const Token& t) {
    return t.anonymous ? anonymous_ : named_;
  }
  Status checkNew(const Token& t) {
    auto& tab = table(t);
    auto it = tab.find(t.str);
    if (it != tab.end())
      return errorAt(
          t, fmt::format("redefinition of {} (first defined at line {})", t.text, it->second.line));
    return Status::ok();
  }
  void define(const Token& t, Value* v) { table(t).emplace(t.str, Def{v, t.line}); }
  /// The value a %name token refers to; `use` says what the reference is for messages.
  Expected<Value*> lookup(const Token& t, std::string_view use) {
    auto& tab = table(t);
    auto it = tab.find(t.str);
    if (it == tab.end()) return errorAt(t, fmt::format("{} undefined value {}", use, t.text));
    return it->second.value;
  }

  // ---- types ----
  Expected<TensorType> parseType() {
    if (!is(TokKind::Ident)) return expected("a type such as f32[N,3,224,224]{nchw}");
    const Token& dtypeTok = tok();
    std::optional<DType> dtype = parseDType(dtypeTok.text);
    if (!dtype)
      return errorAt(dtypeTok, fmt::format("unknown dtype '{}' (expected one of {})", dtypeTok.text,
                                           allDTypeNames()));
    advance();
    KILN_TRY(expect(TokKind::LBracket, "'[' and the shape after the dtype"));
    Shape shape;
    if (!is(TokKind::RBracket)) {
      while (true) {
        if (isIdent("N")) {
          shape.dims().push_back(kBatch);
        } else if (is(TokKind::Int)) {
          std::optional<int64_t> d = toInt(tok().text);
          if (!d) return errorAt(tok(), fmt::format("bad number '{}' (out of range)", tok().text));
          if (*d < 0)
            return errorAt(tok(), fmt::format("bad dimension {} (a dimension is N or an integer "
                                              ">= 0)",
                                              *d));
          if (*d > kMaxDim)
            return errorAt(tok(),
                           fmt::format("dimension {} exceeds the limit {}", *d, kMaxDimText));
          shape.dims().push_back(*d);
        } else {
          return expected("a dimension (N or an integer)");
        }
        advance();
        if (!consume(TokKind::Comma)) break;
      }
    }
    KILN_TRY(expect(TokKind::RBracket, "',' or ']' in the shape"));
    if (Status limits = checkShapeLimits(shape); !limits)
      return errorAt(dtypeTok, limits.message());
    if (!is(TokKind::LBrace)) {
      std::optional<Layout> layout = defaultLayout(shape.rank());
      if (!layout)
        return errorAt(dtypeTok, fmt::format("rank {} has no default layout", shape.rank()));
      return TensorType{*dtype, std::move(shape), *layout};
    }
    const Token& openTok = tok();
    advance();
    Layout layout = Layout::Scalar;
    if (is(TokKind::Ident)) {
      std::optional<Layout> l = parseLayout(tok().text);
      if (!l)
        return errorAt(tok(), fmt::format("unknown layout '{}' (expected one of {}, or {{}} for "
                                          "a scalar)",
                                          tok().text, allLayoutNames()));
      layout = *l;
      advance();
    }
    KILN_TRY(expect(TokKind::RBrace, "'}' after the layout"));
    if (layoutRank(layout) != shape.rank())
      return errorAt(openTok,
                     fmt::format("layout {} has rank {} but shape {} has rank {}", braced(layout),
                                 layoutRank(layout), shape.str(), shape.rank()));
    return TensorType{*dtype, std::move(shape), layout};
  }

  /// ` loc("file":line:col)` after a declaration or node; nullopt when absent.
  Expected<std::optional<Loc>> parseLocSuffix() {
    if (!isIdent("loc")) return std::optional<Loc>();
    advance();
    KILN_TRY(expect(TokKind::LParen, "'(' after loc"));
    if (!is(TokKind::String)) return expected("a quoted file name in loc(\"file\":line:col)");
    Loc loc;
    loc.file = tok().str;
    advance();
    for (int* field : {&loc.line, &loc.col}) {
      KILN_TRY(expect(TokKind::Colon, "':' in loc(\"file\":line:col)"));
      std::optional<int64_t> v = is(TokKind::Int) ? toInt(tok().text) : std::nullopt;
      if (!v || *v < 0 || *v > std::numeric_limits<int>::max())
        return expected(field == &loc.line ? "a line number" : "a column number");
      *field = static_cast<int>(*v);
      advance();
    }
    KILN_TRY(expect(TokKind::RParen, "')' to close loc("));
    return std::optional<Loc>(std::move(loc));
  }

  // ---- attribute values: one overload per field type of ir/attrs.h ----
  Status wrongKind(const AttrCtx& c) const {
    if (is(TokKind::Error) || is(TokKind::Eof))
      return expected(fmt::format("{} for {} attribute '{}'", c.what, c.op, c.attr));
    return errorAt(tok(), fmt::format("{}: attribute '{}' expects {}, got '{}'", c.op, c.attr,
                                      c.what, tok().text));
  }
  Status parseValue(const AttrCtx& c, int64_t& out) {
    if (!is(TokKind::Int)) return wrongKind(c);
    std::optional<int64_t> v = toInt(tok().text);
    if (!v)
      return errorAt(tok(), fmt::format("{}: attribute '{}': bad number '{}' (out of range)", c.op,
                                        c.attr, tok().text));
    out = *v;
    advance();
    return Status::ok();
  }
  Status parseValue(const AttrCtx& c, double& out) {
    bool negative = is(TokKind::Minus);
    if (negative) advance();
    if (isIdent("inf") || isIdent("nan")) {
      out = isIdent("nan") ? std::numeric_limits<double>::quiet_NaN()
                           : (negative ? -1.0 : 1.0) * std::numeric_limits<double>::infinity();
      advance();
      return Status::ok();
    }
    if (negative) return expected("inf or nan after '-'");
    if (!is(TokKind::Int) && !is(TokKind::Float)) return wrongKind(c);
    std::optional<double> v = toDouble(tok().text);
    if (!v)
      return errorAt(tok(), fmt::format("{}: attribute '{}': bad number '{}' (out of range)", c.op,
                                        c.attr, tok().text));
    out = *v;
    advance();
    return Status::ok();
  }
  Status parseValue(const AttrCtx& c, bool& out) {
    if (!isIdent("true") && !isIdent("false")) return wrongKind(c);
    out = isIdent("true");
    advance();
    return Status::ok();
  }
  Status parseValue(const AttrCtx& c, DType& out) {
    std::optional<DType> d = is(TokKind::Ident) ? parseDType(tok().text) : std::nullopt;
    if (!d) return wrongKind(c);
    out = *d;
    advance();
    return Status::ok();
  }
  Status parseValue(const AttrCtx& c, Layout& out) {
    // The scalar layout's spelling is empty; it is written "" here.
    std::optional<Layout> l;
    if (is(TokKind::Ident) || is(TokKind::String))
      l = parseLayout(is(TokKind::String) ? std::string_view(tok().str) : tok().text);
    if (!l) return wrongKind(c);
    out = *l;
    advance();
    return Status::ok();
  }
  Status parseValue(const AttrCtx& c, PostOp& out) {
    std::optional<PostOpKind> k = is(TokKind::Ident) ? parsePostOpKind(tok().text) : std::nullopt;
    if (!k) return wrongKind(c);
    out = PostOp{*k, 0.0, 0.0};
    const Token& nameTok = tok();
    advance();
    const int arity = postOpArity(*k);
    if (arity == 0) return Status::ok();
    if (!consume(TokKind::LParen))
      return errorAt(nameTok, fmt::format("{}: attribute '{}': post-op {} takes {} parameters, "
                                          "e.g. {}(0.0,6.0)",
                                          c.op, c.attr, postOpName(*k), arity, postOpName(*k)));
    KILN_TRY(parseValue(c, out.alpha));
    KILN_TRY(expect(TokKind::Comma, fmt::format("',' between the parameters of {}", postOpName(*k))));
    KILN_TRY(parseValue(c, out.beta));
    return expect(TokKind::RParen, fmt::format("')' after the parameters of {}", postOpName(*k)));
  }
  template <typename T>
  Status parseList(const AttrCtx& c, std::vector<T>& out) {
    if (!is(TokKind::LBracket)) return wrongKind(c);
    advance();
    out.clear();
    if (consume(TokKind::RBracket)) return Status::ok();
    while (true) {
      T v{};
      KILN_TRY(parseValue(c, v));
      out.push_back(v);
      if (!consume(TokKind::Comma)) break;
    }
    return expect(TokKind::RBracket, "',' or ']' in the list");
  }
  Status parseValue(const AttrCtx& c, IntList& out) { return parseList(c, out); }
  Status parseValue(const AttrCtx& c, FloatList& out) { return parseList(c, out); }
  Status parseValue(const AttrCtx& c, PostOpList& out) { return parseList(c, out); }
  template <size_t N>
  Status parseValue(const AttrCtx& c, Ints<N>& out) {
    const Token& open = tok();
    IntList list;
    KILN_TRY(parseList(c, list));
    if (list.size() != N)
      return errorAt(open, fmt::format("{}: attribute '{}' expects {}, got {} value{}", c.op,
                                       c.attr, c.what, list.size(), list.size() == 1 ? "" : "s"));
    std::copy(list.begin(), list.end(), out.begin());
    return Status::ok();
  }

  static std::string_view describe(const int64_t*) { return "an integer"; }
  static std::string_view describe(const double*) { return "a number"; }
  static std::string_view describe(const bool*) { return "true or false"; }
  static std::string_view describe(const IntList*) { return "a list of integers"; }
  static std::string_view describe(const FloatList*) { return "a list of numbers"; }
  static std::string describe(const PostOpList*) {
    std::string names;
#define KILN_POST_OP_NAME(e, s, n) names += names.empty() ? s : ", " s;
    KILN_POST_OPS(KILN_POST_OP_NAME)
#undef KILN_POST_OP_NAME
    return fmt::format("a list of post-ops ({})", names);
  }
  static std::string describe(const DType*) { return fmt::format("a dtype ({})", allDTypeNames()); }
  static std::string describe(const Layout*) {
    return fmt::format("a layout ({})", allLayoutNames());
  }
  template <size_t N>
  static std::string describe(const Ints<N>*) {
    return fmt::format("a list of {} integer{}", N, N == 1 ? "" : "s");
  }

  /// `{name=value, ...}` (the '{' is next) into the op's attribute struct.
  template <typename A>
  Status parseAttrFields(std::string_view op, A& attrs) {
    advance();  // '{'
    std::vector<std::string> seen;
    if (consume(TokKind::RBrace)) return Status::ok();
    while (true) {
      if (!is(TokKind::Ident)) return expected("an attribute name");
      const Token& nameTok = tok();
      std::string names;
      bool known = false;
      forEachField(attrs, [&](std::string_view name, const auto&) {
        names += names.empty() ? std::string(name) : fmt::format(", {}", name);
        known = known || name == nameTok.text;
      });
      if (!known)
        return errorAt(nameTok,
                       fmt::format("{} has no attribute '{}' ({})", op, nameTok.text,
                                   names.empty() ? "it takes none" : "attributes: " + names));
      std::string name(nameTok.text);
      if (std::find(seen.begin(), seen.end(), name) != seen.end())
        return errorAt(nameTok, fmt::format("{}: attribute '{}' is given twice", op, name));
      seen.push_back(name);
      advance();
      KILN_TRY(expect(TokKind::Equal, fmt::format("'=' after attribute '{}'", name)));
      Status status;
      forEachField(attrs, [&](std::string_view fieldName, auto& value) {
        if (fieldName != name) return;
        std::string what(describe(&value));
        status = parseValue(AttrCtx{op, name, what}, value);
      });
      KILN_TRY(status);
      if (!consume(TokKind::Comma)) break;
    }
    return expect(TokKind::RBrace, "',' or '}' in the attributes");
  }

  // ---- statements ----
  Status parseDeclaration() {
    const Token& kwTok = tok();
    ValueKind kind = kwTok.text == "input"    ? ValueKind::Input
                     : kwTok.text == "param"  ? ValueKind::Param
                     : kwTok.text == "buffer" ? ValueKind::Buffer
                                              : ValueKind::Const;
    advance();
    if (!is(TokKind::Value)) return expected(fmt::format("a %name after '{}'", kwTok.text));
    const Token& nameTok = tok();
    if (nameTok.anonymous && kind != ValueKind::Input)
      return errorAt(nameTok, fmt::format("{} {} needs a name: weights are bound to the weight "
                                          "store by name",
                                          kwTok.text, nameTok.text));
    KILN_TRY(checkNew(nameTok));
    advance();
    KILN_TRY(expect(TokKind::Colon, fmt::format("':' and the type of {}", nameTok.text)));
    const Token& typeTok = tok();
    KILN_ASSIGN_OR_RETURN(TensorType type, parseType());
    if (kind != ValueKind::Input && !type.shape.isStatic())
      return errorAt(typeTok, fmt::format("{} {} must have a static shape (only inputs and "
                                          "results may use N), got {}",
                                          kwTok.text, nameTok.text, type.str()));
    KILN_ASSIGN_OR_RETURN(std::optional<Loc> loc, parseLocSuffix());
    std::string name = nameTok.anonymous ? std::string() : nameTok.str;
    Loc where = loc ? std::move(*loc) : locOf(kwTok);
    Value* v = kind == ValueKind::Input
                   ? g_->addInput(std::move(name), std::move(type), where)
                   : g_->addWeight(kind, std::move(name), std::move(type), where);
    define(nameTok, v);
    return Status::ok();
  }

  Status parseOutput() {
    advance();
    while (true) {
      if (!is(TokKind::Value)) return expected("a %value to output");
      KILN_ASSIGN_OR_RETURN(Value * v, lookup(tok(), "output of"));
      g_->addOutput(v);
      advance();
      if (!consume(TokKind::Comma)) return Status::ok();
    }
  }

  /// Moves a shape rule's message (located at the node's loc, which may be a DSL call site
  /// from a loc(...) suffix) to the .kir line.
  Status relocate(const Status& status, const Loc& nodeLoc, const Loc& here) const {
    std::string msg = status.message();
    std::string prefix = nodeLoc.str() + ": ";
    if (nodeLoc.known() && msg.starts_with(prefix)) msg.erase(0, prefix.size());
    return errorAt(here, msg);
  }

  Status parseNode() {
    const Token& firstTok = tok();
    std::vector<const Token*> results;
    while (true) {
      if (!is(TokKind::Value)) return expected("a %result name");
      KILN_TRY(checkNew(tok()));
      for (const Token* r : results)
        if (r->anonymous == tok().anonymous && r->str == tok().str)
          return errorAt(tok(), fmt::format("redefinition of {} (first defined at line {})",
                                            tok().text, r->line));
      results.push_back(&tok());
      advance();
      if (!consume(TokKind::Comma)) break;
    }
    KILN_TRY(expect(TokKind::Equal, "'=' after the result names"));
    if (!is(TokKind::Ident)) return expected("an op name");
    const Token& opTok = tok();
    std::optional<OpKind> kind = parseOpKind(opTok.text);
    if (!kind) return errorAt(opTok, fmt::format("unknown op '{}'", opTok.text));
    const OpInfo& info = opInfo(*kind);
    advance();
    KILN_TRY(expect(TokKind::LParen, fmt::format("'(' after {}", info.name)));
    std::vector<Value*> operands;
    if (!is(TokKind::RParen)) {
      while (true) {
        if (!is(TokKind::Value)) return expected("an operand %value");
        KILN_ASSIGN_OR_RETURN(Value * v, lookup(tok(), "use of"));
        operands.push_back(v);
        advance();
        if (!consume(TokKind::Comma)) break;
      }
    }
    KILN_TRY(expect(TokKind::RParen, "',' or ')' after the operands"));
    int n = static_cast<int>(operands.size());
    if (n < info.minArity || (info.maxArity >= 0 && n > info.maxArity)) {
      std::string want = info.maxArity < 0 ? fmt::format("at least {}", info.minArity)
                         : info.minArity == info.maxArity
                             ? fmt::format("{}", info.minArity)
                             : fmt::format("{} to {}", info.minArity, info.maxArity);
      bool one = info.minArity == 1 && info.maxArity <= 1;
      return errorAt(opTok, fmt::format("{} expects {} operand{}, got {}", info.name, want,
                                        one ? "" : "s", n));
    }
    Attrs attrs = defaultAttrs(*kind);
    if (is(TokKind::LBrace))
      KILN_TRY(std::visit([&](auto& a) { return parseAttrFields(info.name, a); }, attrs));
    KILN_TRY(expect(TokKind::Colon, "':' and the result type"));
    std::vector<TensorType> types;
    std::vector<const Token*> typeToks;
    while (true) {
      typeToks.push_back(&tok());
      KILN_ASSIGN_OR_RETURN(TensorType t, parseType());
      types.push_back(std::move(t));
      if (!consume(TokKind::Comma)) break;
    }
    KILN_ASSIGN_OR_RETURN(std::optional<Loc> loc, parseLocSuffix());
    if (types.size() != results.size())
      return errorAt(
          *typeToks.front(),
          fmt::format("{}: {} result{} named but {} type{} written", info.name, results.size(),
                      results.size() == 1 ? "" : "s", types.size(), types.size() == 1 ? "" : "s"));
    Loc here = locOf(firstTok);
    Node* node = g_->addNode(*kind, std::move(operands), std::move(attrs), types,
                             loc ? std::move(*loc) : here);
    std::vector<TensorType> inferred;
    Status rule = inferResultTypes(*node, inferred);
    if (!rule) return relocate(rule, node->loc(), here);
    if (inferred.size() != results.size())
      return errorAt(
          here, fmt::format("{}: {} result{} written, the op gives {}", info.name, results.size(),
                            results.size() == 1 ? "" : "s", inferred.size()));
    for (size_t i = 0; i < results.size(); ++i) {
      if (inferred[i].dtype == types[i].dtype && inferred[i].shape == types[i].shape) continue;
      return errorAt(*typeToks[i],
                     fmt::format("{}: result {} declared {}, inferred {}", info.name,
                                 results[i]->text, types[i].str(), inferred[i].str()));
    }
    for (size_t i = 0; i < results.size(); ++i) {
      if (!results[i]->anonymous) node->result(i)->setName(results[i]->str);
      define(*results[i], node->result(i));
    }
    return Status::ok();
  }

  std::string_view file_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  int prevEndLine_ = 1;
  int prevEndCol_ = 1;
  Graph* g_ = nullptr;
  std::unordered_map<std::string, Def> named_;
  std::unordered_map<std::string, Def> anonymous_;
};

}  // namespace

Expected<Graph> parseGraph(std::string_view text, std::string_view fileName) {
  return Parser(text, fileName).parseGraph();
}

Expected<TensorType> parseType(std::string_view text) {
  return Parser(text, "<type>").parseTypeOnly();
}

}  // namespace kiln::ir
