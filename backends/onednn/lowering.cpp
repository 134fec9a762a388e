// The lowering context: memory descriptors of kiln layouts, temporaries, views, primitive
// steps with scratchpads, compile-time weight reorders and row-major round trips.
#include "backends/onednn/lowering.h"

#include <cstring>

namespace kiln::backends::onednn {

using namespace ir;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

namespace {

Tag tagFor(Layout layout) {
  switch (layout) {
    case Layout::Scalar:
    case Layout::X:
      return Tag::a;
    case Layout::NC:
    case Layout::OI:
      return Tag::ab;
    case Layout::NCW:
      return Tag::abc;
    case Layout::NCHW:
    case Layout::OIHW:
      return Tag::abcd;
    case Layout::NHWC:
    case Layout::OHWI:
      return Tag::acdb;
    case Layout::HWIO:
      return Tag::cdba;
    case Layout::NChw8c:
      return Tag::aBcd8b;
    case Layout::NChw16c:
      return Tag::aBcd16b;
    case Layout::NCDHW:
      return Tag::abcde;
  }
  return Tag::undef;
}

}  // namespace

int64_t elementBytes(const TensorType& type) { return type.dtype == DType::I64 ? 8 : 4; }

Md mdFor(const TensorType& type) {
  Dims dims(type.shape.dims().begin(), type.shape.dims().end());
  if (dims.empty()) dims.push_back(1);
  // oneDNN has no 64-bit integers: i64 values (labels, counts) only reach kernels of ours,
  // which see them as bytes; an f32 descriptor of twice the elements sizes them.
  if (type.dtype == DType::I64) return Md(Dims{std::max<int64_t>(1, 2 * type.shape.numElements())}, DataType::f32, Tag::a);
  return Md(dims, DataType::f32, tagFor(type.layout));
}

Md plainMd(const Dims& dims) {
  Dims strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * std::max<int64_t>(dims[i], 1);
  return Md(dims, DataType::f32, strides);
}

std::string valueName(const Value& v) {
  return v.name().empty() ? fmt::format("%{}", v.id()) : "%" + v.name();
}

// ---- WeightCache ----

Expected<std::byte*> WeightCache::get(const Value& w, const std::byte* data, const Md& from,
                                      const Md& to, const dnnl::engine& engine) {
  if (from == to) return const_cast<std::byte*>(data);
  for (Entry& e : entries_)
    if (e.valueId == w.id() && e.md == to) return e.data.raw();
  const int64_t bytes = static_cast<int64_t>(to.get_size());
  Tensor t(DType::F32, Shape{(bytes + 3) / 4}, Layout::X);
  try {
    dnnl::memory src(from, engine, const_cast<std::byte*>(data));
    dnnl::memory dst(to, engine, t.raw());
    dnnl::stream s(engine);
    dnnl::reorder(src, dst).execute(s, src, dst);
    s.wait();
  } catch (const dnnl::error& e) {
    return error(w.loc(), "onednn: cannot reorder weight {}: {}", valueName(w), e.what());
  }
  entries_.push_back(Entry{w.id(), to, t});
  return t.raw();
}

std::byte* WeightCache::keep(Tensor t) {
  kept_.push_back(std::move(t));
  return kept_.back().raw();
}

// ---- LowerContext ----

Dims LowerContext::dims(const Value* v) const {
  const auto& d = type(v).shape.dims();
  return Dims(d.begin(), d.end());
}

std::byte* LowerContext::constantData(const Value* v) const {
  const ValueInfo& info = values_[v->id()];
  return info.storage == Storage::Fixed ? info.fixed : nullptr;
}

Slot LowerContext::temp(int64_t bytes) {
  out_.temps.push_back(bytes);
  return Slot::temp(static_cast<int>(out_.temps.size() - 1));
}

void LowerContext::view(const Value* result, const Value* of) {
  ValueInfo& r = values_[result->id()];
  r.storage = Storage::View;
  r.viewOf = of->id();
}

void LowerContext::setConstant(const Value* result, Tensor t) {
  ValueInfo& r = values_[result->id()];
  r.storage = Storage::Fixed;
  r.fixed = weights_.keep(std::move(t));
}

dnnl::primitive_attr LowerContext::attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

ProtoStep LowerContext::make(const dnnl::primitive_desc_base& pd, std::vector<StepArg> args) {
  const Md scratch = pd.scratchpad_desc();
  if (scratch.get_size() > 0)
    args.push_back(StepArg{DNNL_ARG_SCRATCHPAD, temp(static_cast<int64_t>(scratch.get_size())), scratch});
  return ProtoStep{dnnl::primitive(pd.get()), Kernel{}, Check{}, std::move(args)};
}

void LowerContext::add(const dnnl::primitive_desc_base& pd, std::vector<StepArg> args) {
  out_.steps.push_back(make(pd, std::move(args)));
}

void LowerContext::addKernel(Kernel k, std::vector<Slot> args) {
  ProtoStep step;
  step.kernel = std::move(k);
  for (size_t i = 0; i < args.size(); ++i) step.args.push_back(StepArg{static_cast<int>(i), args[i], Md()});
  out_.steps.push_back(std::move(step));
}

void LowerContext::addCheck(Check c, std::vector<Slot> args) {
  ProtoStep step;
  step.check = std::move(c);
  for (size_t i = 0; i < args.size(); ++i) step.args.push_back(StepArg{static_cast<int>(i), args[i], Md()});
  out_.steps.push_back(std::move(step));
}

void LowerContext::addReorder(Slot src, const Md& from, Slot dst, const Md& to) {
  dnnl::reorder::primitive_desc pd(engine_, from, engine_, to, attr());
  add(pd, {StepArg{DNNL_ARG_FROM, src, from}, StepArg{DNNL_ARG_TO, dst, to}});
}

Expected<Slot> LowerContext::weight(const Value* w, const Md& given, const Md& want) {
  if (std::byte* data = constantData(w)) {
    KILN_ASSIGN_OR_RETURN(std::byte * p, weights_.get(*w, data, given, want, engine_));
    return Slot::fixedData(p);
  }
  if (given == want) return Slot::value(w);
  const Slot t = temp(static_cast<int64_t>(want.get_size()));
  addReorder(Slot::value(w), given, t, want);
  return t;
}

Slot LowerContext::plainOperand(const Value* v, Md& plain) {
  plain = plainMd(dims(v));
  if (isRowMajor(type(v).layout) || md(v) == plain) return Slot::value(v);
  const Slot t = temp(static_cast<int64_t>(plain.get_size()));
  addReorder(Slot::value(v), md(v), t, plain);
  return t;
}

Slot LowerContext::plainResult(const Value* v, Md& plain) {
  plain = plainMd(dims(v));
  if (isRowMajor(type(v).layout) || md(v) == plain) return Slot::value(v);
  return temp(static_cast<int64_t>(plain.get_size()));
}

void LowerContext::finishPlainResult(const Value* v, Slot written, const Md& plain) {
  if (written.kind == Slot::Kind::Value) return;
  addReorder(written, plain, Slot::value(v), md(v));
}

}  // namespace kiln::backends::onednn
