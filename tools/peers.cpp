// Peer processes for `kiln bench --compare`: posix_spawn with pipes, JSON lines, clean errors.
#include "tools/peers.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

extern char** environ;

namespace kiln::tools {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kGreetingTimeoutS = 120;
constexpr const char* kSetupHint = "run scripts/setup-bench.sh";
// Debian's torch runs linear layers in whatever libblas.so.3 it loads; the reference BLAS
// would make the peer look several times slower than it is.
constexpr const char* kOpenBlasDir = "/usr/lib/x86_64-linux-gnu/openblas-openmp";

std::string envOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : std::move(fallback);
}

/// environ with `overrides` ("NAME=value") replacing entries of the same name.
std::vector<std::string> mergedEnvironment(const std::vector<std::string>& overrides) {
  std::vector<std::string> out;
  auto nameOf = [](std::string_view e) { return e.substr(0, e.find('=')); };
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const std::string& o : overrides) replaced |= nameOf(o) == nameOf(entry);
    if (!replaced) out.emplace_back(entry);
  }
  out.insert(out.end(), overrides.begin(), overrides.end());
  return out;
}

std::vector<char*> cStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

/// Writing to a child that died must give EPIPE, not kill kiln.
void ignoreSigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

/// A new empty temp file (its path) and an fd open on it (close-on-exec).
Expected<std::pair<std::string, int>> makeTempFile(std::string_view tag) {
  std::string path = (fs::temp_directory_path() / fmt::format("kiln_{}_XXXXXX", tag)).string();
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return error("cannot create a temporary file {}: {}", path, std::strerror(errno));
  return std::pair{path, fd};
}

std::string readTail(const std::string& path, size_t maxBytes) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (text.size() > maxBytes) text = "…" + text.substr(text.size() - maxBytes);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
  return "stopped";
}

/// posix_spawnp with stdin/stdout/stderr dup'ed from the given fds; the pid or an error.
Expected<pid_t> spawnWith(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                          int in, int out, int err) {
  if (argv.empty()) return error("no program to run");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in, 0);
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  posix_spawn_file_actions_adddup2(&actions, err, 2);
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = mergedEnvironment(env);
  std::vector<char*> argp = cStrings(args), envp = cStrings(envs);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return error("cannot run '{}' ({})", argv[0], std::strerror(rc));
  return pid;
}

}  // namespace

PeerEnv defaultPeerEnv() {
  return PeerEnv{envOr("KILN_PEERS_DIR", KILN_PEERS_DIR), envOr("KILN_PYTHON", "/usr/bin/python3"),
                 envOr("KILN_NODE", "node")};
}

std::string_view peerName(PeerKind k) {
  switch (k) {
    case PeerKind::Ort:
      return "ort";
    case PeerKind::Torch:
      return "torch";
  }
  return "?";
}

std::string_view peerTitle(PeerKind k) {
  switch (k) {
    case PeerKind::Ort:
      return "ONNX Runtime";
    case PeerKind::Torch:
      return "PyTorch";
  }
  return "?";
}

Expected<std::vector<PeerKind>> parsePeerList(std::string_view list) {
  std::vector<PeerKind> out;
  if (list.empty()) return out;
  for (size_t begin = 0; begin <= list.size();) {
    const size_t comma = std::min(list.find(',', begin), list.size());
    const std::string_view item = list.substr(begin, comma - begin);
    begin = comma + 1;
    bool found = false;
    for (PeerKind k : kPeerKinds) {
      if (item != peerName(k)) continue;
      for (PeerKind seen : out)
        if (seen == k) return error("--compare: '{}' is listed twice", item);
      out.push_back(k);
      found = true;
    }
    if (!found) return error("--compare: unknown peer '{}' (known: ort, torch)", item);
  }
  return out;
}

// ---- JsonLineProcess ------------------------------------------------------------------------

Expected<std::unique_ptr<JsonLineProcess>> JsonLineProcess::spawn(
    const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  ignoreSigpipe();
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return error("pipe: {}", std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return error("pipe: {}", std::strerror(errno));
  }
  std::unique_ptr<JsonLineProcess> p(new JsonLineProcess());
  p->toChild_ = in[1];
  p->fromChild_ = out[0];
  auto closeChildEnds = [&] {
    ::close(in[0]);
    ::close(out[1]);
  };
  Expected<std::pair<std::string, int>> err = makeTempFile("peer_stderr");
  if (!err.isOk()) {
    closeChildEnds();
    return Status::error(err.message());
  }
  p->stderrPath_ = err->first;
  Expected<pid_t> pid = spawnWith(argv, env, in[0], out[1], err->second);
  closeChildEnds();
  ::close(err->second);
  if (!pid.isOk()) return Status::error(pid.message());
  p->pid_ = *pid;
  return p;
}

JsonLineProcess::~JsonLineProcess() {
  if (toChild_ >= 0) {
    // Ask politely; end of input also makes a peer exit. A dead child gives EPIPE, ignored.
    static constexpr std::string_view kQuit = "{\"cmd\":\"quit\"}\n";
    (void)!::write(toChild_, kQuit.data(), kQuit.size());
    ::close(toChild_);
  }
  if (pid_ > 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (fromChild_ >= 0) ::close(fromChild_);
  if (!stderrPath_.empty()) ::unlink(stderrPath_.c_str());
}

void JsonLineProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string JsonLineProcess::exitDescription() {
  if (pid_ <= 0) return "has ended";
  int status = 0;
  // The child closed its stdout; give it a moment to finish exiting.
  for (int i = 0; i < 200; ++i) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return describeStatus(status);
    }
    if (r < 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return "closed its output";
}

std::string JsonLineProcess::stderrTail(size_t maxBytes) const {
  return readTail(stderrPath_, maxBytes);
}

Status JsonLineProcess::writeLine(const json& j) {
  if (toChild_ < 0) return error("the process's input is closed");
  const std::string line = j.dump() + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(toChild_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = errno == EPIPE ? exitDescription() : std::strerror(errno);
      std::string tail = stderrTail();
      return error("{}{}", why, tail.empty() ? "" : ":\n" + tail);
    }
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

Expected<json> JsonLineProcess::readLine(double timeoutS) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeoutS);
  for (;;) {
    if (const size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object())
        return error("wrote a line that is not a JSON object: {}", line.substr(0, 200));
      return j;
    }
    if (fromChild_ < 0) return error("the process's output is closed");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill();
      return error("did not answer within {:.0f} s (killed)", timeoutS);
    }
    pollfd pfd{fromChild_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) return error("poll: {}", std::strerror(errno));
    if (ready <= 0) continue;
    char chunk[65536];
    const ssize_t n = ::read(fromChild_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return error("read: {}", std::strerror(errno));
    if (n == 0) {
      ::close(fromChild_);
      fromChild_ = -1;
      const std::string why = exitDescription();
      const std::string tail = stderrTail();
      return error("{}{}", why, tail.empty() ? " (no stderr output)" : ":\n" + tail);
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Expected<json> JsonLineProcess::request(const json& req, double timeoutS) {
  KILN_TRY(writeLine(req));
  return readLine(timeoutS);
}

// ---- Peer -----------------------------------------------------------------------------------

Expected<std::unique_ptr<Peer>> Peer::start(PeerKind kind, const PeerEnv& env, int threads) {
  const std::string_view who = kind == PeerKind::Ort ? "ORT" : "torch";
  auto unavailable = [&](const std::string& why) {
    return Status::error(fmt::format("{} peer unavailable: {}: {}", who, why, kSetupHint));
  };
  std::vector<std::string> argv;
  std::vector<std::string> envs{fmt::format("OMP_NUM_THREADS={}", threads)};
  const fs::path dir(env.peersDir);
  if (kind == PeerKind::Ort) {
    const fs::path script = dir / "ort_peer.js",
                   package = dir / "node_modules" / "onnxruntime-node";
    if (!fs::exists(script)) return unavailable(fmt::format("{} does not exist", script.string()));
    if (!fs::exists(package))
      return unavailable(fmt::format("{} is missing (npm ci not run)", package.string()));
    argv = {env.node, script.string()};
  } else {
    const fs::path script = dir / "torch_peer.py";
    if (!fs::exists(script)) return unavailable(fmt::format("{} does not exist", script.string()));
    argv = {env.python, script.string()};
    if (fs::exists(kOpenBlasDir)) {
      const char* old = std::getenv("LD_LIBRARY_PATH");
      envs.push_back(fmt::format("LD_LIBRARY_PATH={}{}{}", kOpenBlasDir, old && *old ? ":" : "",
                                 old ? old : ""));
    }
  }
  Expected<std::unique_ptr<JsonLineProcess>> process = JsonLineProcess::spawn(argv, envs);
  if (!process.isOk()) return unavailable(process.message());
  Expected<json> hello = (*process)->readLine(kGreetingTimeoutS);
  if (!hello.isOk()) return unavailable(fmt::format("{} {}", argv[0], hello.message()));
  if (!hello->value("ok", false)) return unavailable(hello->value("error", hello->dump()));
  std::unique_ptr<Peer> peer(new Peer(kind, std::move(process).value()));
  peer->version_ = hello->value("version", "?");
  peer->threads_ = threads;
  return peer;
}

Expected<json> Peer::request(const json& req, double timeoutS) {
  Expected<json> reply = process_->request(req, timeoutS);
  if (!reply.isOk()) return error("{} peer {}", peerName(kind_), reply.message());
  if (!reply->value("ok", false))
    return error("{} peer: {}", peerName(kind_), reply->value("error", reply->dump()));
  return reply;
}

Expected<Peer::Loaded> Peer::load(const std::string& modelPath, const std::string& inputPath) {
  KILN_ASSIGN_OR_RETURN(
      json reply,
      request(
          {{"cmd", "load"}, {"model", modelPath}, {"input", inputPath}, {"threads", threads_}}));
  if (!reply.contains("load_ms") || !reply["load_ms"].is_number())
    return error("{} peer: load reply lacks load_ms: {}", peerName(kind_), reply.dump());
  return Loaded{reply["load_ms"].get<double>(), reply.value("blas", "")};
}

Expected<std::vector<double>> Peer::run(int iters) {
  KILN_ASSIGN_OR_RETURN(json reply, request({{"cmd", "run"}, {"iters", iters}}));
  const json& ms = reply["ms"];
  if (!ms.is_array() || ms.size() != static_cast<size_t>(iters))
    return error("{} peer: run reply lacks {} times: {}", peerName(kind_), iters,
                 reply.dump().substr(0, 200));
  std::vector<double> out;
  for (const json& v : ms) {
    if (!v.is_number()) return error("{} peer: run reply has a non-number time", peerName(kind_));
    out.push_back(v.get<double>());
  }
  return out;
}

Expected<int64_t> Peer::peakBytes() {
  KILN_ASSIGN_OR_RETURN(json reply, request({{"cmd", "rss"}}));
  if (!reply.contains("peak_bytes") || !reply["peak_bytes"].is_number_integer())
    return error("{} peer: rss reply lacks peak_bytes: {}", peerName(kind_), reply.dump());
  return reply["peak_bytes"].get<int64_t>();
}

Expected<ir::Tensor> Peer::output(const std::string& inputPath) {
  KILN_ASSIGN_OR_RETURN(json reply, request({{"cmd", "output"}, {"input", inputPath}}));
  const json &shape = reply["shape"], &data = reply["data"];
  if (!shape.is_array() || !data.is_array())
    return error("{} peer: output reply lacks shape and data", peerName(kind_));
  std::vector<ir::Dim> dims;
  int64_t count = 1;
  for (const json& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > ir::kMaxDim)
      return error("{} peer: bad output shape {}", peerName(kind_), shape.dump());
    dims.push_back(d.get<int64_t>());
    count *= dims.back();
    if (count > ir::kMaxElements) return error("{} peer: output too large", peerName(kind_));
  }
  if (static_cast<int64_t>(data.size()) != count)
    return error("{} peer: output has {} values for shape {}", peerName(kind_), data.size(),
                 shape.dump());
  ir::Tensor t(ir::DType::F32, ir::Shape(std::move(dims)));
  float* p = t.data<float>();
  for (const json& v : data) {
    if (!v.is_number()) return error("{} peer: output has a non-number value", peerName(kind_));
    *p++ = v.get<float>();
  }
  return t;
}

// ---- one-shot processes -------------------------------------------------------------------

Expected<std::string> runToCompletion(const std::vector<std::string>& argv,
                                      const std::vector<std::string>& env) {
  KILN_ASSIGN_OR_RETURN(auto outFile, makeTempFile("run_output"));
  const int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  Expected<pid_t> pid = spawnWith(argv, env, devNull, outFile.second, outFile.second);
  if (devNull >= 0) ::close(devNull);
  ::close(outFile.second);
  std::string output;
  int status = 0;
  if (pid.isOk()) {
    while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
    }
    output = readTail(outFile.first, 1 << 20);
  }
  ::unlink(outFile.first.c_str());
  if (!pid.isOk()) return Status::error(pid.message());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return error("'{}' {}:\n{}", fmt::join(argv, " "), describeStatus(status),
                 output.size() > 3000 ? "…" + output.substr(output.size() - 3000) : output);
  return output;
}

int64_t selfPeakBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

}  // namespace kiln::tools
