// Statistics and output of `kiln bench`: the text table and the --json object.
#include "tools/bench_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

namespace kiln::tools {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

double imagesPerS(int64_t batch, double ms) {
  return ms > 0 ? 1000.0 * batch / ms : 0;
}

std::string shapeText(const std::vector<int64_t>& dims) {
  return fmt::format("{}", fmt::join(dims, "×"));
}

template <typename... Args>
void appendLine(std::string& out, fmt::format_string<Args...> f, Args&&... args) {
  fmt::format_to(std::back_inserter(out), f, std::forward<Args>(args)...);
  out += '\n';
}

}  // namespace

double median(std::span<const double> v) {
  if (v.empty()) return 0;
  std::vector<double> s(v.begin(), v.end());
  std::sort(s.begin(), s.end());
  const size_t m = s.size() / 2;
  return s.size() % 2 ? s[m] : 0.5 * (s[m - 1] + s[m]);
}

std::vector<double> Participant::all() const {
  std::vector<double> out;
  for (const auto& r : rounds) out.insert(out.end(), r.begin(), r.end());
  return out;
}

double Participant::medianMs() const {
  return median(all());
}

double Participant::minMs() const {
  const std::vector<double> a = all();
  return a.empty() ? 0 : *std::min_element(a.begin(), a.end());
}

std::vector<double> Participant::roundMedians() const {
  std::vector<double> out;
  for (const auto& r : rounds) out.push_back(median(r));
  return out;
}

Ratio timeRatio(const Participant& kiln, const Participant& peer) {
  Ratio r;
  const double p = peer.medianMs();
  r.overall = p > 0 ? kiln.medianMs() / p : 0;
  const std::vector<double> k = kiln.roundMedians(), q = peer.roundMedians();
  r.lo = std::numeric_limits<double>::infinity();
  r.hi = 0;
  for (size_t i = 0; i < std::min(k.size(), q.size()); ++i) {
    if (q[i] <= 0) continue;
    r.lo = std::min(r.lo, k[i] / q[i]);
    r.hi = std::max(r.hi, k[i] / q[i]);
  }
  if (r.hi == 0) r.lo = 0;
  return r;
}

std::string formatText(const BenchReport& r) {
  std::string out;
  std::string order = "kiln";
  for (const Participant& p : r.peers) order += ", " + p.name;
  appendLine(out, "kiln bench {}: input {}, {} thread{}, backend {}", r.model,
             shapeText(r.inputShape), r.threads, r.threads == 1 ? "" : "s", r.backend);
  appendLine(
      out, "  {} warm-up iteration{} each, then {} round{} × {} iterations, interleaved ({})",
      r.warmup, r.warmup == 1 ? "" : "s", r.rounds, r.rounds == 1 ? "" : "s", r.iters, order);
  for (const Participant& p : r.peers) appendLine(out, "  {}: {}", p.name, p.detail);
  if (!r.peers.empty() && r.inputSensitivity <= r.weakCheck * r.tolerance)
    appendLine(out,
               "WARNING: the output barely depends on the input (max|y(x) - y(x')| = {:.3g}): "
               "the agreement check below is weak",
               r.inputSensitivity);
  for (const Participant& p : r.peers) {
    if (p.agrees) {
      appendLine(
          out,
          "check: max|kiln - {}| = {:.3g} on one input (max|y| {:.4g}, tolerance {:.3g}): agree",
          p.name, p.maxAbsDiff, r.maxAbsRef, r.tolerance);
    } else {
      appendLine(
          out,
          "WARNING: kiln and {} DISAGREE: max|kiln - {}| = {:.3g} > tolerance {:.3g} (max|y| "
          "{:.4g}); the {} comparison below is VOID",
          p.name, p.name, p.maxAbsDiff, r.tolerance, r.maxAbsRef, p.name);
    }
  }
  out += '\n';
  appendLine(out, "{:<7} {:>10} {:>10} {:>10} {:>10} {:>12}  {}", "", "median ms", "min ms",
             "images/s", "peak MiB", "compile ms",
             r.peers.empty() ? "" : "kiln/peer time (per-round range)");
  auto row = [&](const Participant& p, const std::string& ratio) {
    const double med = p.medianMs();
    appendLine(out, "{:<7} {:>10.3f} {:>10.3f} {:>10.2f} {:>10.1f} {:>12.1f}  {}", p.name, med,
               p.minMs(), imagesPerS(r.batch, med), p.peakBytes / kMiB, p.loadMs, ratio);
  };
  row(r.kiln, "");
  for (const Participant& p : r.peers) {
    const Ratio q = timeRatio(r.kiln, p);
    row(p, fmt::format("{:.2f}× ({:.2f}–{:.2f}){}", q.overall, q.lo, q.hi,
                       p.agrees ? "" : "  VOID: outputs disagree"));
  }
  out += '\n';
  appendLine(out,
             "kiln memory: arena {:.1f} MiB + weights {:.1f} MiB; process peak (VmHWM) {:.1f} MiB",
             r.arenaBytes / kMiB, r.weightBytes / kMiB, r.kiln.peakBytes / kMiB);
  if (!r.peers.empty())
    appendLine(out,
               "peer compile ms = session creation; a time ratio above 1 means kiln is slower");
  const double kilnMed = r.kiln.medianMs();
  const double achieved = kilnMed > 0 ? r.modelFlops / (kilnMed * 1e6) : 0;
  if (r.sgemm) {
    appendLine(
        out,
        "sgemm: dnnl_sgemm {}³ with {} thread{}: {:.1f} GFLOP/s; kiln {} achieves {:.2f} GFLOP/s "
        "({:.1f}% of it)",
        r.sgemm->n, r.threads, r.threads == 1 ? "" : "s", r.sgemm->gflops, r.model, achieved,
        r.sgemm->gflops > 0 ? 100 * achieved / r.sgemm->gflops : 0);
  } else {
    appendLine(out, "kiln {}: {:.3g} GFLOP per run, {:.2f} GFLOP/s achieved", r.model,
               r.modelFlops / 1e9, achieved);
  }
  return out;
}

nlohmann::json toJson(const BenchReport& r) {
  using nlohmann::json;
  auto common = [&](const Participant& p) {
    const double med = p.medianMs();
    return json{{"median_ms", med},
                {"min_ms", p.minMs()},
                {"images_per_s", imagesPerS(r.batch, med)},
                {"peak_bytes", p.peakBytes},
                {"round_medians_ms", p.roundMedians()}};
  };
  json j = common(r.kiln);
  j["model"] = r.model;
  j["backend"] = r.backend;
  j["batch"] = r.batch;
  j["input_shape"] = r.inputShape;
  j["threads"] = r.threads;
  j["warmup"] = r.warmup;
  j["rounds"] = r.rounds;
  j["iters"] = r.iters;
  j["compile_ms"] = r.kiln.loadMs;
  j["arena_bytes"] = r.arenaBytes;
  j["weight_bytes"] = r.weightBytes;
  j["model_flops"] = r.modelFlops;
  const double med = r.kiln.medianMs();
  j["gflops"] = med > 0 ? r.modelFlops / (med * 1e6) : 0;
  j["peers"] = json::object();
  json warnings = json::array();
  for (const Participant& p : r.peers) {
    json q = common(p);
    const Ratio ratio = timeRatio(r.kiln, p);
    q["version"] = p.detail;
    q["load_ms"] = p.loadMs;
    q["ratio"] = ratio.overall;
    q["ratio_min"] = ratio.lo;
    q["ratio_max"] = ratio.hi;
    q["max_abs_diff"] = p.maxAbsDiff;
    q["agrees"] = p.agrees;
    if (!p.agrees)
      warnings.push_back(
          fmt::format("kiln and {} disagree (max|Δ| {:.3g} > {:.3g}): the "
                      "comparison is void",
                      p.name, p.maxAbsDiff, r.tolerance));
    j["peers"][p.name] = std::move(q);
  }
  if (!r.peers.empty()) {
    j["max_abs_ref"] = r.maxAbsRef;
    j["tolerance"] = r.tolerance;
    j["input_sensitivity"] = r.inputSensitivity;
    if (r.inputSensitivity <= r.weakCheck * r.tolerance)
      warnings.push_back(
          fmt::format("the output barely depends on the input (max|y(x) - y(x')| "
                      "{:.3g}): the agreement check is weak",
                      r.inputSensitivity));
  }
  j["warnings"] = std::move(warnings);
  if (r.sgemm) {
    j["sgemm"] = json{{"n", r.sgemm->n},
                      {"gflops", r.sgemm->gflops},
                      {"model_fraction",
                       r.sgemm->gflops > 0 ? j["gflops"].get<double>() / r.sgemm->gflops : 0.0}};
  }
  return j;
}

}  // namespace kiln::tools
