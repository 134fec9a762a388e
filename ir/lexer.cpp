// The .kir lexer: whitespace and `//` comments are skipped; lexical errors become an Error token.
#include "ir/lexer.h"

#include <fmt/format.h>

namespace kiln::ir::kir {

namespace {

bool isAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isIdentChar(char c) {
  return isAlpha(c) || isDigit(c);
}
bool isNameChar(char c) {
  return isIdentChar(c) || c == '.' || c == '-';
}
int hexDigit(char c) {
  if (isDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// How a byte is named in a message: 'x' when printable, 0xNN otherwise.
std::string describeByte(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02x}", u);
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    while (true) {
      Token t = next();
      TokKind k = t.kind;
      out.push_back(std::move(t));
      if (k == TokKind::Eof || k == TokKind::Error) return out;
    }
  }

 private:
  bool atEnd() const { return pos_ >= text_.size(); }
  char peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  void bump() {
    if (text_[pos_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++pos_;
  }

  void skipSpaceAndComments() {
    while (!atEnd()) {
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        bump();
      } else if (c == '/' && peek(1) == '/') {
        while (!atEnd() && peek() != '\n') bump();
      } else {
        return;
      }
    }
  }

  Token start(TokKind kind) {
    Token t;
    t.kind = kind;
    t.line = line_;
    t.col = col_;
    begin_ = pos_;
    return t;
  }
  Token finish(Token t) {
    t.text = text_.substr(begin_, pos_ - begin_);
    t.endLine = line_;
    t.endCol = col_;
    return t;
  }
  Token fail(Token t, std::string message) {
    t.kind = TokKind::Error;
    t.str = std::move(message);
    return finish(std::move(t));
  }

  Token next() {
    skipSpaceAndComments();
    Token t = start(TokKind::Eof);
    if (atEnd()) return finish(std::move(t));
    char c = peek();
    auto single = [&](TokKind k) {
      t.kind = k;
      bump();
      return finish(std::move(t));
    };
    switch (c) {
      case '(':
        return single(TokKind::LParen);
      case ')':
        return single(TokKind::RParen);
      case '{':
        return single(TokKind::LBrace);
      case '}':
        return single(TokKind::RBrace);
      case '[':
        return single(TokKind::LBracket);
      case ']':
        return single(TokKind::RBracket);
      case ',':
        return single(TokKind::Comma);
      case ':':
        return single(TokKind::Colon);
      case '=':
        return single(TokKind::Equal);
      case '"':
        return lexString(std::move(t));
      case '%':
        return lexName(std::move(t), TokKind::Value);
      case '@':
        return lexName(std::move(t), TokKind::Global);
      default:
        break;
    }
    if (c == '-' && !isDigit(peek(1))) return single(TokKind::Minus);
    if (c == '-' || isDigit(c)) return lexNumber(std::move(t));
    if (isAlpha(c)) {
      t.kind = TokKind::Ident;
      while (!atEnd() && isIdentChar(peek())) bump();
      return finish(std::move(t));
    }
    bump();
    return fail(std::move(t), fmt::format("unexpected character {}", describeByte(c)));
  }

  /// Reads the body of a quoted string (the opening quote is next); false on an error.
  bool readQuoted(std::string& out, std::string& message) {
    bump();  // opening quote
    while (true) {
      if (atEnd() || peek() == '\n') {
        message = "unterminated string (missing '\"')";
        return false;
      }
      char c = peek();
      if (c == '"') {
        bump();
        return true;
      }
      if (c != '\\') {
        if (static_cast<unsigned char>(c) < 0x20) {
          message = fmt::format("{} inside a string (write it as \\x{:02x})", describeByte(c),
                                static_cast<unsigned char>(c));
          return false;
        }
        out += c;
        bump();
        continue;
      }
      bump();
      char e = peek();
      if (e == '\\' || e == '"') {
        out += e;
        bump();
      } else if (e == 'n') {
        out += '\n';
        bump();
      } else if (e == 't') {
        out += '\t';
        bump();
      } else if (e == 'x' && hexDigit(peek(1)) >= 0 && hexDigit(peek(2)) >= 0) {
        out += static_cast<char>(hexDigit(peek(1)) * 16 + hexDigit(peek(2)));
        bump();
        bump();
        bump();
      } else {
        message = "bad escape in string (use \\\\, \\\", \\n, \\t or \\xHH)";
        return false;
      }
    }
  }

  Token lexString(Token t) {
    t.kind = TokKind::String;
    std::string message;
    if (!readQuoted(t.str, message)) return fail(std::move(t), std::move(message));
    return finish(std::move(t));
  }

  Token lexName(Token t, TokKind kind) {
    t.kind = kind;
    char sigil = peek();
    bump();
    if (peek() == '"') {
      std::string message;
      if (!readQuoted(t.str, message)) return fail(std::move(t), std::move(message));
      // An empty value name would silently make an anonymous value (or an unnamed weight).
      if (kind == TokKind::Value && t.str.empty())
        return fail(std::move(t), "a value name must not be empty");
      return finish(std::move(t));
    }
    size_t nameBegin = pos_;
    while (!atEnd() && isNameChar(peek())) bump();
    std::string_view name = text_.substr(nameBegin, pos_ - nameBegin);
    if (name.empty()) return fail(std::move(t), fmt::format("expected a name after '{}'", sigil));
    bool digitsOnly = name.find_first_not_of("0123456789") == std::string_view::npos;
    if (kind == TokKind::Value && digitsOnly) {
      t.anonymous = true;
      t.str = std::string(name);
      return finish(std::move(t));
    }
    if (!isBareName(name))
      return fail(std::move(t),
                  fmt::format("invalid name '{}{}' (a name starts with a letter or '_'{}; quote "
                              "other names: {}{})",
                              sigil, name, kind == TokKind::Value ? ", or is all digits" : "",
                              sigil, quoteString(name)));
    t.str = std::string(name);
    return finish(std::move(t));
  }

  Token lexNumber(Token t) {
    t.kind = TokKind::Int;
    if (peek() == '-') bump();
    while (isDigit(peek())) bump();
    bool ok = true;
    if (peek() == '.') {
      t.kind = TokKind::Float;
      bump();
      while (isDigit(peek())) bump();
    }
    if (peek() == 'e' || peek() == 'E') {
      t.kind = TokKind::Float;
      bump();
      if (peek() == '+' || peek() == '-') bump();
      if (!isDigit(peek())) ok = false;
      while (isDigit(peek())) bump();
    }
    if (isNameChar(peek()) || peek() == '+') ok = false;
    if (!ok) {
      while (!atEnd() && (isNameChar(peek()) || peek() == '+')) bump();
      std::string_view spelled = text_.substr(begin_, pos_ - begin_);
      return fail(std::move(t), fmt::format("bad number '{}'", spelled));
    }
    return finish(std::move(t));
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t begin_ = 0;
  int line_ = 1;
  int col_ = 1;
};

}  // namespace

std::vector<Token> lex(std::string_view text) {
  return Lexer(text).run();
}

bool isBareName(std::string_view name) {
  if (name.empty() || !isAlpha(name[0])) return false;
  for (char c : name)
    if (!isNameChar(c)) return false;
  return true;
}

std::string quoteString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace kiln::ir::kir
