// Errors as values: Status, Expected<T>, source locations, and the propagation macros.
#pragma once

#include <cstdint>
#include <optional>
#include <source_location>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace kiln {

/// Where something came from: a DSL call site, a `.kir` line:col, or an ONNX node name
/// (file empty, line 0, `name` set).
struct Loc {
  std::string file;
  int line = 0;
  int col = 0;

  bool known() const { return !file.empty() || line != 0; }
  static Loc from(const std::source_location& s) {
    return Loc{s.file_name(), static_cast<int>(s.line()), static_cast<int>(s.column())};
  }
  /// `file:line:col`, `file:line`, `file` or "" — the prefix of an error message.
  std::string str() const;
  friend bool operator==(const Loc&, const Loc&) = default;
};

/// Success, or an error with a message (the location is already part of the message).
class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    s.failed_ = true;
    return s;
  }
  bool isOk() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }
  /// Prefixes context ("while loading w.npz: ...").
  Status withContext(std::string_view context) const {
    if (!failed_) return *this;
    return error(fmt::format("{}: {}", context, message_));
  }
  /// Marks a status as deliberately ignored.
  void ignore() const {}

 private:
  std::string message_;
  bool failed_ = false;
};

/// A value or an error.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : data_(std::move(value)) {}  // NOLINT: implicit by design
  Expected(Status status) : data_(std::move(status)) {}  // NOLINT: must be an error
  bool isOk() const { return data_.index() == 0; }
  explicit operator bool() const { return isOk(); }
  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return isOk() ? Status::ok() : std::get<1>(data_); }
  const std::string& message() const { return std::get<1>(data_).message(); }

 private:
  std::variant<T, Status> data_;
};

/// `loc: message` when the location is known, the message alone otherwise. (The CLI's main
/// prints `error: ` in front of every failed Status.)
template <typename... Args>
Status error(const Loc& loc, fmt::format_string<Args...> f, Args&&... args) {
  std::string msg = fmt::format(f, std::forward<Args>(args)...);
  if (loc.known()) return Status::error(fmt::format("{}: {}", loc.str(), msg));
  return Status::error(std::move(msg));
}

template <typename... Args>
Status error(fmt::format_string<Args...> f, Args&&... args) {
  return Status::error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace kiln

#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)

/// Returns the Status from the enclosing function when `expr` failed.
#define KILN_TRY(expr)                                   \
  do {                                                   \
    ::kiln::Status kiln_try_status_ = (expr);            \
    if (!kiln_try_status_.isOk()) return kiln_try_status_; \
  } while (0)

#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.isOk()) return tmp.status();            \
  lhs = std::move(tmp).value()

/// `KILN_ASSIGN_OR_RETURN(auto x, parse(...));`
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(kiln_expected_, __LINE__), lhs, expr)

/// For our own invariants only; user input reaching one is a bug.
#define KILN_ASSERT(cond, ...)                                                        \
  do {                                                                                \
    if (!(cond)) ::kiln::detail::assertFail(#cond, __FILE__, __LINE__, "" __VA_ARGS__); \
  } while (0)

namespace kiln::detail {
[[noreturn]] void assertFail(const char* cond, const char* file, int line, const char* msg);
}
