// Location formatting and the internal-assertion handler.
#include "ir/status.h"

#include <cstdio>
#include <cstdlib>

namespace kiln {

std::string Loc::str() const {
  if (file.empty() && line == 0) return "";
  if (line == 0) return file;
  if (col == 0) return fmt::format("{}:{}", file, line);
  return fmt::format("{}:{}:{}", file, line, col);
}

namespace detail {
void assertFail(const char* cond, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "%s:%d: internal error: assertion `%s` failed%s%s\n", file, line, cond,
               msg[0] ? ": " : "", msg);
  std::abort();
}
}  // namespace detail

}  // namespace kiln
