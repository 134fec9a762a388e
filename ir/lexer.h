// Tokens of the .kir text IR and the lexer that produces them (used by ir/parser.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::ir::kir {

enum class TokKind {
  Eof,
  Error,   // a lexical error; `str` holds the message
  Ident,   // graph, input, conv2d, f32, nchw, N, true, inf, loc, ...
  Value,   // %x, %0, %"any text"
  Global,  // @name, @"any text"
  Int,     // 42, -3
  Float,   // 1.5, -2e-05
  String,  // "text"
  LParen,
  RParen,
  LBrace,
  RBrace,
  LBracket,
  RBracket,
  Comma,
  Colon,
  Equal,
  Minus,  // a '-' not followed by a digit (as in -inf)
};

struct Token {
  TokKind kind = TokKind::Eof;
  std::string_view text;   // the source spelling
  std::string str;         // decoded name or string contents; the message of an Error token
  bool anonymous = false;  // a Value spelled with digits only (%7)
  int line = 1;            // 1-based start
  int col = 1;
  int endLine = 1;  // just past the token
  int endCol = 1;
};

/// Splits `text` into tokens. The result always ends with one Eof or one Error token.
std::vector<Token> lex(std::string_view text);

/// True when `name` can be written without quotes after `%` or `@`: [A-Za-z_][A-Za-z0-9_.-]*.
bool isBareName(std::string_view name);

/// `"text"` with `\\`, `\"`, `\n`, `\t` and `\xHH` escapes for other control bytes.
std::string quoteString(std::string_view s);

}  // namespace kiln::ir::kir
