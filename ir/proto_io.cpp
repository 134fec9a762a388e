// `.kpb` reading and writing: Module <-> kiln.pb.Module, attributes converted generically
// through each attribute struct's `fields`; plus the whole-file helpers.
#include "ir/proto_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include "ir/verifier.h"
#include "kiln.pb.h"

namespace kiln::ir {

namespace {

template <typename T>
struct IsIntArray : std::false_type {};
template <size_t N>
struct IsIntArray<std::array<int64_t, N>> : std::true_type {};

// ---- Module -> protobuf ----

void toProto(const Loc& loc, pb::Loc* p) {
  p->set_file(loc.file);
  p->set_line(loc.line);
  p->set_col(loc.col);
}

void toProto(const TensorType& t, pb::TensorType* p) {
  p->set_dtype(std::string(dtypeName(t.dtype)));
  for (Dim d : t.shape.dims()) p->add_dims(d);
  p->set_layout(std::string(layoutName(t.layout)));
}

pb::ValueKind toProto(ValueKind k) {
  switch (k) {
    case ValueKind::Input:
      return pb::VALUE_KIND_INPUT;
    case ValueKind::Param:
      return pb::VALUE_KIND_PARAM;
    case ValueKind::Buffer:
      return pb::VALUE_KIND_BUFFER;
    case ValueKind::Const:
      return pb::VALUE_KIND_CONST;
    case ValueKind::Result:
      return pb::VALUE_KIND_RESULT;
  }
  return pb::VALUE_KIND_UNSPECIFIED;
}

// Results carry their node's location, so only declarations write one.
void toProto(const Value& v, pb::ValueDecl* p) {
  p->set_id(v.id());
  p->set_name(v.name());
  toProto(v.type(), p->mutable_type());
  if (v.kind() != ValueKind::Result && v.loc().known()) toProto(v.loc(), p->mutable_loc());
  p->set_kind(toProto(v.kind()));
}

template <typename T>
void setAttrValue(const T& v, pb::Attr* a) {
  if constexpr (std::is_same_v<T, int64_t>) {
    a->set_i(v);
  } else if constexpr (std::is_same_v<T, double>) {
    a->set_f(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    a->set_b(v);
  } else if constexpr (IsIntArray<T>::value || std::is_same_v<T, IntList>) {
    for (int64_t x : v) a->mutable_ints()->add_values(x);
  } else if constexpr (std::is_same_v<T, FloatList>) {
    for (double x : v) a->mutable_floats()->add_values(x);
  } else if constexpr (std::is_same_v<T, DType>) {
    a->set_dtype(std::string(dtypeName(v)));
  } else if constexpr (std::is_same_v<T, Layout>) {
    a->set_layout(std::string(layoutName(v)));
  } else if constexpr (std::is_same_v<T, PostOpList>) {
    pb::PostOps* ops = a->mutable_post_ops();
    for (const PostOp& op : v) {
      pb::PostOp* p = ops->add_ops();
      p->set_kind(std::string(postOpName(op.kind)));
      p->set_alpha(op.alpha);
      p->set_beta(op.beta);
    }
  } else {
    static_assert(!sizeof(T), "attribute field type without a protobuf form");
  }
}

void toProto(const Node& n, pb::Node* p) {
  p->set_op(std::string(n.opName()));
  for (const Value* v : n.operands()) p->add_operands(v->id());
  for (const Value* r : n.results()) toProto(*r, p->add_results());
  std::visit(
      [&](const auto& attrs) {
        forEachField(attrs, [&](std::string_view name, const auto& value) {
          pb::Attr* a = p->add_attrs();
          a->set_name(std::string(name));
          setAttrValue(value, a);
        });
      },
      n.attrs());
  if (n.loc().known()) toProto(n.loc(), p->mutable_loc());
}

void toProto(const Module& m, pb::Module* p) {
  p->set_format_version(kKpbFormatVersion);
  const Graph& g = m.graph;
  pb::Graph* pg = p->mutable_graph();
  pg->set_name(g.name());
  for (const Value* v : g.inputs()) toProto(*v, pg->add_inputs());
  for (const Value* v : g.weights()) toProto(*v, pg->add_weights());
  for (const auto& n : g.nodes()) toProto(*n, pg->add_nodes());
  for (const Value* v : g.outputs()) pg->add_outputs(v->id());
  for (const auto& [name, t] : m.weights.entries()) {
    pb::NamedTensor* pt = p->add_weights();
    pt->set_name(name);
    pt->set_dtype(std::string(dtypeName(t.dtype())));
    for (Dim d : t.shape().dims()) pt->add_dims(d);
    pt->set_layout(std::string(layoutName(t.layout())));
    if (t.raw() && t.nbytes()) pt->set_data(reinterpret_cast<const char*>(t.raw()), t.nbytes());
  }
}

// ---- protobuf -> Module, validating as it goes ----

// A name from the file as messages show it: control and non-ASCII bytes escaped, long
// names cut, so garbage cannot mess up a terminal.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) {
    auto u = static_cast<unsigned char>(c);
    out += u >= 0x20 && u < 0x7f && c != '\\' ? std::string(1, c) : fmt::format("\\x{:02x}", u);
  }
  return s.size() > 80 ? out + "..." : out;
}

class Reader {
 public:
  explicit Reader(std::string_view what) : what_(what) {}

  Expected<Module> read(const pb::Module& p) {
    if (p.format_version() == 0)
      return fail("not a kiln module (no format version; is this a .kpb file?)");
    if (p.format_version() > kKpbFormatVersion)
      return fail(
          fmt::format("format version {} is newer than this kiln supports ({}); upgrade kiln",
                      p.format_version(), kKpbFormatVersion));
    Module m;
    KILN_TRY(readGraph(p.graph(), m.graph));
    Status st = verify(m.graph);
    if (!st) return fail(st.message());
    for (const pb::NamedTensor& pt : p.weights()) {
      if (m.weights.contains(pt.name()))
        return fail(fmt::format("weight tensor '{}' appears twice", shown(pt.name())));
      KILN_ASSIGN_OR_RETURN(Tensor t, readTensor(pt));
      m.weights.set(pt.name(), std::move(t));
    }
    return m;
  }

 private:
  Status fail(std::string_view msg) const { return error("{}: {}", what_, msg); }

  Expected<TensorType> readType(const pb::TensorType& p, std::string_view ctx) const {
    TensorType t;
    auto dtype = parseDType(p.dtype());
    if (!dtype) return fail(fmt::format("{}: unknown dtype '{}'", ctx, shown(p.dtype())));
    auto layout = parseLayout(p.layout());
    if (!layout) return fail(fmt::format("{}: unknown layout '{}'", ctx, shown(p.layout())));
    if (layoutRank(*layout) != static_cast<size_t>(p.dims_size()))
      return fail(fmt::format("{}: layout {{{}}} is for rank {}, the shape has rank {}", ctx,
                              p.layout(), layoutRank(*layout), p.dims_size()));
    t.dtype = *dtype;
    t.shape = Shape(std::vector<Dim>(p.dims().begin(), p.dims().end()));
    t.layout = *layout;
    // The limits keep every shape rule's arithmetic far from int64 overflow.
    Status limits = checkShapeLimits(t.shape);
    if (!limits) return fail(fmt::format("{}: {}", ctx, limits.message()));
    return t;
  }

  static Loc readLoc(const pb::ValueDecl& d) {
    return d.has_loc() ? Loc{d.loc().file(), d.loc().line(), d.loc().col()} : Loc{};
  }

  // Declares `d`'s id; `ctx` describes it for messages.
  Status claimId(const pb::ValueDecl& d, std::string_view ctx) {
    if (!ids_.emplace(d.id(), nullptr).second)
      return fail(fmt::format("{}: value id {} is declared more than once", ctx, d.id()));
    return Status::ok();
  }

  Status readGraph(const pb::Graph& p, Graph& g) {
    g.setName(p.name());
    // Every result id, so a forward reference can be told from an undefined one.
    std::unordered_set<int32_t> resultIds;
    for (const pb::Node& n : p.nodes())
      for (const pb::ValueDecl& r : n.results()) resultIds.insert(r.id());

    for (int i = 0; i < p.inputs_size(); ++i) {
      const pb::ValueDecl& d = p.inputs(i);
      std::string ctx = fmt::format("input {} '{}'", i, shown(d.name()));
      if (d.kind() != pb::VALUE_KIND_INPUT)
        return fail(fmt::format("{}: is not of kind input", ctx));
      if (d.name().empty()) return fail(fmt::format("input {} has no name", i));
      KILN_TRY(claimId(d, ctx));
      KILN_ASSIGN_OR_RETURN(TensorType t, readType(d.type(), ctx));
      ids_[d.id()] = g.addInput(d.name(), std::move(t), readLoc(d));
    }
    for (int i = 0; i < p.weights_size(); ++i) {
      const pb::ValueDecl& d = p.weights(i);
      std::string ctx = fmt::format("weight {} '{}'", i, shown(d.name()));
      ValueKind kind;
      switch (d.kind()) {
        case pb::VALUE_KIND_PARAM:
          kind = ValueKind::Param;
          break;
        case pb::VALUE_KIND_BUFFER:
          kind = ValueKind::Buffer;
          break;
        case pb::VALUE_KIND_CONST:
          kind = ValueKind::Const;
          break;
        default:
          return fail(fmt::format("{}: kind must be param, buffer or const", ctx));
      }
      if (d.name().empty()) return fail(fmt::format("weight {} has no name", i));
      KILN_TRY(claimId(d, ctx));
      KILN_ASSIGN_OR_RETURN(TensorType t, readType(d.type(), ctx));
      ids_[d.id()] = g.addWeight(kind, d.name(), std::move(t), readLoc(d));
    }
    for (int i = 0; i < p.nodes_size(); ++i) KILN_TRY(readNode(p.nodes(i), i, resultIds, g));
    std::vector<Value*> outputs;
    for (int32_t id : p.outputs()) {
      auto it = ids_.find(id);
      if (it == ids_.end()) return fail(fmt::format("output refers to undefined value id {}", id));
      outputs.push_back(it->second);
    }
    g.setOutputs(std::move(outputs));
    return Status::ok();
  }

  Status readNode(const pb::Node& p, int index, const std::unordered_set<int32_t>& resultIds,
                  Graph& g) {
    std::string ctx = fmt::format("node {} ({})", index, shown(p.op()));
    auto kind = parseOpKind(p.op());
    if (!kind) return fail(fmt::format("node {}: unknown op '{}'", index, shown(p.op())));
    const OpInfo& info = opInfo(*kind);
    int arity = p.operands_size();
    if (arity < info.minArity || (info.maxArity >= 0 && arity > info.maxArity))
      return fail(fmt::format("{}: has {} operands, the op takes {}{}", ctx, arity, info.minArity,
                              info.maxArity < 0 ? " or more"
                              : info.maxArity == info.minArity
                                  ? ""
                                  : fmt::format(" to {}", info.maxArity)));
    std::vector<Value*> operands;
    for (int k = 0; k < arity; ++k) {
      int32_t id = p.operands(k);
      auto it = ids_.find(id);
      if (it != ids_.end()) {
        operands.push_back(it->second);
        continue;
      }
      if (resultIds.count(id))
        return fail(
            fmt::format("{}: operand {} (value id {}) is defined after its use", ctx, k, id));
      return fail(fmt::format("{}: operand {} refers to undefined value id {}", ctx, k, id));
    }
    Attrs attrs = defaultAttrs(*kind);
    KILN_TRY(readAttrs(p, ctx, attrs));
    std::vector<TensorType> types;
    for (int k = 0; k < p.results_size(); ++k) {
      const pb::ValueDecl& d = p.results(k);
      std::string rctx = fmt::format("{}: result {}", ctx, k);
      if (d.kind() != pb::VALUE_KIND_RESULT)
        return fail(fmt::format("{}: is not of kind result", rctx));
      KILN_TRY(claimId(d, rctx));
      KILN_ASSIGN_OR_RETURN(TensorType t, readType(d.type(), rctx));
      types.push_back(std::move(t));
    }
    Loc loc = p.has_loc() ? Loc{p.loc().file(), p.loc().line(), p.loc().col()} : Loc{};
    Node* node = g.addNode(*kind, std::move(operands), std::move(attrs), std::move(types), loc);
    for (int k = 0; k < p.results_size(); ++k) {
      Value* r = node->result(k);
      r->setName(p.results(k).name());
      ids_[p.results(k).id()] = r;
    }
    // Result types are checked against the shape rules by verify() once the graph is built.
    return Status::ok();
  }

  template <typename T>
  Status getAttrValue(const pb::Attr& a, T& out, std::string_view ctx) const {
    auto wrongKind = [&](std::string_view expected) {
      return fail(fmt::format("{}: attribute '{}' must be {}", ctx, shown(a.name()), expected));
    };
    if constexpr (std::is_same_v<T, int64_t>) {
      if (!a.has_i()) return wrongKind("an integer");
      out = a.i();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!a.has_f()) return wrongKind("a float");
      out = a.f();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!a.has_b()) return wrongKind("a bool");
      out = a.b();
    } else if constexpr (IsIntArray<T>::value) {
      if (!a.has_ints() || a.ints().values_size() != static_cast<int>(out.size()))
        return wrongKind(fmt::format("a list of {} integers", out.size()));
      for (size_t i = 0; i < out.size(); ++i) out[i] = a.ints().values(static_cast<int>(i));
    } else if constexpr (std::is_same_v<T, IntList>) {
      if (!a.has_ints()) return wrongKind("a list of integers");
      out.assign(a.ints().values().begin(), a.ints().values().end());
    } else if constexpr (std::is_same_v<T, FloatList>) {
      if (!a.has_floats()) return wrongKind("a list of floats");
      out.assign(a.floats().values().begin(), a.floats().values().end());
    } else if constexpr (std::is_same_v<T, DType>) {
      if (!a.has_dtype()) return wrongKind("a dtype");
      auto d = parseDType(a.dtype());
      if (!d)
        return fail(fmt::format("{}: attribute '{}': unknown dtype '{}'", ctx, shown(a.name()),
                                shown(a.dtype())));
      out = *d;
    } else if constexpr (std::is_same_v<T, Layout>) {
      if (!a.has_layout()) return wrongKind("a layout");
      auto l = parseLayout(a.layout());
      if (!l)
        return fail(fmt::format("{}: attribute '{}': unknown layout '{}'", ctx, shown(a.name()),
                                shown(a.layout())));
      out = *l;
    } else if constexpr (std::is_same_v<T, PostOpList>) {
      if (!a.has_post_ops()) return wrongKind("a list of post-ops");
      out.clear();
      for (const pb::PostOp& p : a.post_ops().ops()) {
        auto k = parsePostOpKind(p.kind());
        if (!k)
          return fail(fmt::format("{}: attribute '{}': unknown post-op '{}'", ctx, shown(a.name()),
                                  shown(p.kind())));
        out.push_back(PostOp{*k, p.alpha(), p.beta()});
      }
    } else {
      static_assert(!sizeof(T), "attribute field type without a protobuf form");
    }
    return Status::ok();
  }

  // Fields the file lacks keep their defaults (files from before a field was added); fields
  // the op does not have are an error.
  Status readAttrs(const pb::Node& p, std::string_view ctx, Attrs& attrs) const {
    std::unordered_map<std::string_view, const pb::Attr*> given;
    for (const pb::Attr& a : p.attrs())
      if (!given.emplace(a.name(), &a).second)
        return fail(fmt::format("{}: attribute '{}' is given twice", ctx, shown(a.name())));
    Status st;
    std::visit(
        [&](auto& s) {
          forEachField(s, [&](std::string_view name, auto& value) {
            auto it = given.find(name);
            if (it == given.end()) return;
            if (st) st = getAttrValue(*it->second, value, ctx);
            given.erase(it);
          });
        },
        attrs);
    KILN_TRY(st);
    if (!given.empty())
      return fail(fmt::format("{}: unknown attribute '{}'", ctx, shown(given.begin()->first)));
    return Status::ok();
  }

  Expected<Tensor> readTensor(const pb::NamedTensor& p) const {
    std::string ctx = fmt::format("weight tensor '{}'", shown(p.name()));
    if (p.name().empty()) return fail("a weight tensor has no name");
    pb::TensorType tp;
    tp.set_dtype(p.dtype());
    *tp.mutable_dims() = p.dims();
    tp.set_layout(p.layout());
    KILN_ASSIGN_OR_RETURN(TensorType type, readType(tp, ctx));
    if (!type.shape.isStatic()) return fail(fmt::format("{}: has a symbolic dimension", ctx));
    uint64_t expected = static_cast<uint64_t>(type.shape.numElements()) * dtypeSize(type.dtype);
    if (p.data().size() != expected)
      return fail(fmt::format("{}: {} needs {} data bytes, the file has {}", ctx, type.str(),
                              expected, p.data().size()));
    Tensor t(type.dtype, type.shape, type.layout);
    if (t.nbytes() != expected)
      return fail(
          fmt::format("{}: {} holds {} bytes, expected {}", ctx, type.str(), t.nbytes(), expected));
    if (expected) std::memcpy(t.raw(), p.data().data(), expected);
    return t;
  }

  std::string_view what_;
  std::unordered_map<int32_t, Value*> ids_;
};

Status systemError(std::string_view verb, const std::string& path) {
  return error("cannot {} '{}': {}", verb, path, std::strerror(errno));
}

}  // namespace

std::string serializeModule(const Module& m) {
  pb::Module p;
  toProto(m, &p);
  if (p.ByteSizeLong() > static_cast<size_t>(INT_MAX)) return {};
  return p.SerializeAsString();
}

Expected<Module> parseModule(std::string_view bytes, std::string_view what) {
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    return error("{}: file too large for a kiln module ({} bytes)", what, bytes.size());
  pb::Module p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return error("{}: not a kiln module (the protobuf does not parse; file truncated or corrupt?)",
                 what);
  return Reader(what).read(p);
}

Status writeKpb(const std::string& path, const Module& m) {
  for (const auto& [name, t] : m.weights.entries())
    if (t.shape().numElements() != t.numElements() || (t.nbytes() && !t.raw()))
      return error("cannot write '{}': weight '{}' has no data", path, name);
  pb::Module p;
  toProto(m, &p);
  size_t size = p.ByteSizeLong();
  if (size > static_cast<size_t>(INT_MAX))
    return error("cannot write '{}': the module is {} bytes, over protobuf's 2 GiB limit", path,
                 size);
  std::string bytes = p.SerializeAsString();
  return writeFileAtomic(path, std::as_bytes(std::span(bytes.data(), bytes.size())));
}

Expected<Module> readKpb(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, readFileBytes(path));
  return parseModule(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                     path);
}

// ---- whole-file helpers ----

Expected<std::vector<std::byte>> readFileBytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return systemError("open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = systemError("read", path);
    ::close(fd);
    return s;
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return error("cannot read '{}': Is a directory", path);
  }
  std::vector<std::byte> out;
  if (S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  std::byte chunk[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = systemError("read", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    out.insert(out.end(), chunk, chunk + n);
  }
  ::close(fd);
  return out;
}

std::string tempPathFor(const std::string& path) {
  return fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
}

Status commitTempFile(const std::string& tmp, const std::string& path) {
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = systemError("write", path);
    ::unlink(tmp.c_str());
    return s;
  }
  return Status::ok();
}

Status writeFileAtomic(const std::string& path, std::span<const std::byte> bytes) {
  std::string tmp = tempPathFor(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return systemError("write", path);
  auto fail = [&]() {
    Status s = systemError("write", path);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail();
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail();
  if (::close(fd) != 0) {
    Status s = systemError("write", path);
    ::unlink(tmp.c_str());
    return s;
  }
  return commitTempFile(tmp, path);
}

}  // namespace kiln::ir
