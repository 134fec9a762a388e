// tests/fuzz/fuzz_util.h — what the byte-level fuzz tests share: the iteration scale and a
// seeded mutator of valid files.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <iterator>
#include <random>
#include <vector>

namespace kiln::testing {

using Bytes = std::vector<std::byte>;

// KILN_FUZZ_SCALE=N runs N times the iterations (with other seeds) for longer local runs.
inline int fuzzScale() {
  const char* s = std::getenv("KILN_FUZZ_SCALE");
  return s && std::atoi(s) > 0 ? std::atoi(s) : 1;
}

// One to four byte-level mutations; positions are biased towards `hot` (the first bytes,
// where headers live) half of the time.
inline Bytes mutate(Bytes b, std::mt19937_64& rng, size_t hot) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  auto pos = [&]() { return pick(2) == 0 ? pick(std::min(hot, b.size())) : pick(b.size()); };
  static constexpr unsigned char kInteresting[] = {0,   1,   0x7f, 0x80, 0xff, '(',
                                                   ')', ',', '\'', ' ',  '9'};
  for (size_t k = 0, n = 1 + pick(4); k < n; ++k) {
    switch (pick(7)) {
      case 0:
        if (!b.empty()) b[pos()] ^= std::byte{static_cast<unsigned char>(1u << pick(8))};
        break;
      case 1:
        if (!b.empty()) b[pos()] = std::byte{static_cast<unsigned char>(rng())};
        break;
      case 2:
        if (!b.empty()) b[pos()] = std::byte{kInteresting[pick(std::size(kInteresting))]};
        break;
      case 3:
        b.resize(pick(b.size() + 1));
        break;   // truncate
      case 4: {  // insert random bytes
        size_t at = pos(), len = 1 + pick(16);
        Bytes ins(len);
        for (auto& x : ins) x = std::byte{static_cast<unsigned char>(rng())};
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(std::min(at, b.size())), ins.begin(),
                 ins.end());
        break;
      }
      case 5: {  // erase a range
        size_t at = pos(), len = 1 + pick(16);
        if (at < b.size()) b.erase(b.begin() + at, b.begin() + std::min(b.size(), at + len));
        break;
      }
      case 6: {  // overwrite with a copy of another range (lengths, offsets from elsewhere)
        if (b.size() < 8) break;
        size_t from = pick(b.size() - 4), to = pos(), len = 1 + pick(4);
        for (size_t i = 0; i < len && to + i < b.size() && from + i < b.size(); ++i)
          b[to + i] = b[from + i];
        break;
      }
    }
  }
  return b;
}

}  // namespace kiln::testing
