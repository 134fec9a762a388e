// The peer runtimes of `kiln bench --compare`: ONNX Runtime (bench/peers/ort_peer.js, node)
// and PyTorch (bench/peers/torch_peer.py), each a persistent child process speaking JSON
// lines on its stdin/stdout — one request, one reply:
//   (on start)                                       -> {"ok":true,"peer":…,"version":…}
//   {"cmd":"load","model":M,"input":X.npy,"threads":T} -> {"ok":true,"load_ms":…}
//   {"cmd":"run","iters":K}                          -> {"ok":true,"ms":[K per-iteration times]}
//   {"cmd":"rss"}                                    -> {"ok":true,"peak_bytes":VmHWM,…}
//   {"cmd":"output","input":X.npy}                   -> {"ok":true,"shape":[…],"data":[…]}
//   {"cmd":"quit"}                                   -> {"ok":true}, and the child exits
// A failed request answers {"ok":false,"error":…}; the child also exits at end of input, so
// it dies with kiln. Its stderr goes to a temporary file quoted in errors.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::tools {

/// Where the peer programs live and what runs them.
struct PeerEnv {
  std::string peersDir;  // bench/peers: KILN_PEERS_DIR, else the source tree's
  std::string python;    // KILN_PYTHON, else /usr/bin/python3 (Debian's, with torch)
  std::string node;      // KILN_NODE, else `node` from PATH
};
PeerEnv defaultPeerEnv();

enum class PeerKind { Ort, Torch };
inline constexpr PeerKind kPeerKinds[] = {PeerKind::Ort, PeerKind::Torch};
/// "ort" / "torch": the spelling of --compare and of the JSON keys.
std::string_view peerName(PeerKind k);
/// "ONNX Runtime" / "PyTorch".
std::string_view peerTitle(PeerKind k);
/// Parses "ort,torch" (no duplicates; "" gives none).
Expected<std::vector<PeerKind>> parsePeerList(std::string_view list);

/// A child process that answers one JSON line per JSON line it reads.
class JsonLineProcess {
 public:
  /// Starts argv[0] (looked up in PATH) with this process's environment plus `env`
  /// ("NAME=value" entries override). stdin/stdout are pipes; stderr goes to a temp file.
  static Expected<std::unique_ptr<JsonLineProcess>> spawn(const std::vector<std::string>& argv,
                                                          const std::vector<std::string>& env);
  /// Sends quit, waits up to 2 s, then kills.
  ~JsonLineProcess();
  JsonLineProcess(const JsonLineProcess&) = delete;
  JsonLineProcess& operator=(const JsonLineProcess&) = delete;

  /// The next line, parsed; an error when the child exits, stays silent for `timeoutS`
  /// seconds (then it is killed) or writes something that is not JSON.
  Expected<nlohmann::json> readLine(double timeoutS);
  Status writeLine(const nlohmann::json& j);
  /// writeLine + readLine.
  Expected<nlohmann::json> request(const nlohmann::json& req, double timeoutS);
  /// The last `maxBytes` of what the child wrote to stderr.
  std::string stderrTail(size_t maxBytes = 2000) const;
  pid_t pid() const { return pid_; }

 private:
  JsonLineProcess() = default;
  /// "exited with status 1" / "was killed by signal 9" / "is running"; reaps a dead child.
  std::string exitDescription();
  void kill();

  pid_t pid_ = -1;
  int toChild_ = -1;
  int fromChild_ = -1;
  std::string stderrPath_;
  std::string buffer_;
};

/// One peer runtime: its process, started and greeted; every method is one request.
class Peer {
 public:
  /// Starts the peer and reads its greeting. Missing node / npm packages / torch give
  /// "ORT peer unavailable: …: run scripts/setup-bench.sh" (resp. "torch peer …").
  static Expected<std::unique_ptr<Peer>> start(PeerKind kind, const PeerEnv& env, int threads);

  PeerKind kind() const { return kind_; }
  /// The runtime's version from the greeting ("1.23.2", "1.13.0a0").
  const std::string& version() const { return version_; }

  struct Loaded {
    double ms = 0;     // session creation (ORT) / load + freeze + optimize (torch)
    std::string blas;  // torch: the BLAS library it mapped; ORT: ""
  };
  /// Creates the session for `modelPath` (.onnx / TorchScript .pt) with `inputPath` (.npy) as
  /// the input of `run`.
  Expected<Loaded> load(const std::string& modelPath, const std::string& inputPath);
  /// Runs `iters` times; the per-iteration times in ms, measured inside the peer.
  Expected<std::vector<double>> run(int iters);
  /// The peer's peak resident set (VmHWM), bytes.
  Expected<int64_t> peakBytes();
  /// The model's output for the .npy input at `inputPath`.
  Expected<ir::Tensor> output(const std::string& inputPath);
  /// Any request; errors carry the peer's name and its stderr on a crash.
  Expected<nlohmann::json> request(const nlohmann::json& req, double timeoutS = 600);

 private:
  Peer(PeerKind kind, std::unique_ptr<JsonLineProcess> process)
      : kind_(kind), process_(std::move(process)) {}
  PeerKind kind_;
  std::unique_ptr<JsonLineProcess> process_;
  std::string version_;
  int threads_ = 1;
};

/// Runs argv to completion (stdout and stderr captured, stdin empty); the output, or an error
/// with the exit status and the output's tail.
Expected<std::string> runToCompletion(const std::vector<std::string>& argv,
                                      const std::vector<std::string>& env);

/// This process's peak resident set (VmHWM), bytes; 0 when /proc is unreadable.
int64_t selfPeakBytes();

}  // namespace kiln::tools
