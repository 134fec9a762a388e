// What `kiln bench` measured and how it is printed: per-participant timings (kiln and each
// peer), statistics over them, the text table and the --json object.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kiln::tools {

/// The median of `v` (mean of the middle two for an even count); 0 when empty.
double median(std::span<const double> v);

/// One participant's measurements.
struct Participant {
  std::string name;                         // "kiln", "ort", "torch"
  std::string detail;                       // version / configuration line
  std::vector<std::vector<double>> rounds;  // per round, per iteration, ms
  double loadMs = 0;                        // compile (kiln) / session creation (peers)
  int64_t peakBytes = 0;                    // the process's VmHWM
  // The agreement check against kiln's output (peers only).
  double maxAbsDiff = 0;
  bool agrees = true;

  std::vector<double> all() const;
  double medianMs() const;
  double minMs() const;
  std::vector<double> roundMedians() const;
};

/// kiln's time over the peer's, from the medians of all iterations, and the min–max of the
/// per-round ratios (round r's kiln median over round r's peer median).
struct Ratio {
  double overall = 0, lo = 0, hi = 0;
};
Ratio timeRatio(const Participant& kiln, const Participant& peer);

struct SgemmResult {
  int64_t n = 0;      // M = N = K
  double gflops = 0;  // median over the repetitions
};

struct BenchReport {
  std::string model;
  std::string backend;
  int64_t batch = 1;
  std::vector<int64_t> inputShape;  // as run, batch bound
  int threads = 1;
  int warmup = 0, rounds = 0, iters = 0;
  Participant kiln;
  int64_t arenaBytes = 0, weightBytes = 0;
  double modelFlops = 0;        // per run (the whole batch)
  double maxAbsRef = 0;         // max |kiln output| on the check input
  double tolerance = 0;         // allowed max|Δ| for agreement
  double inputSensitivity = 0;  // max|y(x) - y(x')| of kiln's output on two inputs
  double weakCheck = 10;        // the check is weak when inputSensitivity <= weakCheck · tolerance
  std::vector<Participant> peers;
  std::optional<SgemmResult> sgemm;
};

/// The human-readable table (and a loud warning per disagreeing peer).
std::string formatText(const BenchReport& r);
/// The --json object: median_ms, min_ms, images_per_s, peak_bytes, …, peers.{name}.{…, ratio}.
nlohmann::json toJson(const BenchReport& r);

}  // namespace kiln::tools
