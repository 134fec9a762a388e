// Tensor storage and the weight store.
#include "ir/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace kiln::ir {

namespace {
std::shared_ptr<std::byte[]> allocate(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return std::shared_ptr<std::byte[]>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}
}  // namespace

Tensor::Tensor(DType dtype, Shape shape, Layout layout)
    : dtype_(dtype), shape_(std::move(shape)), layout_(layout) {
  KILN_ASSERT(shape_.isStatic(), "tensor shapes are static");
  numel_ = shape_.numElements();
  data_ = allocate(nbytes());
}

Tensor::Tensor(DType dtype, Shape shape)
    : Tensor(dtype, shape, defaultLayout(shape.rank()).value_or(Layout::Scalar)) {}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_, layout_);
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  KILN_ASSERT(shape.isStatic() && shape.numElements() == numel_, "reshape keeps the element count");
  Tensor t = *this;
  t.layout_ = defaultLayout(shape.rank()).value_or(Layout::Scalar);
  t.shape_ = std::move(shape);
  return t;
}

double Tensor::at(int64_t i) const {
  switch (dtype_) {
    case DType::F32: return data<float>()[i];
    case DType::F64: return data<double>()[i];
    case DType::I64: return static_cast<double>(data<int64_t>()[i]);
    case DType::I32: return data<int32_t>()[i];
    case DType::I8: return data<int8_t>()[i];
    case DType::U8: return data<uint8_t>()[i];
    case DType::Bool: return data<uint8_t>()[i] ? 1.0 : 0.0;
    case DType::F16:
    case DType::BF16: return std::numeric_limits<double>::quiet_NaN();
  }
  return 0;
}

const Tensor* WeightStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::string WeightStore::uniqueName(const std::string& base) const {
  if (!contains(base)) return base;
  for (int i = 1;; ++i) {
    std::string name = fmt::format("{}.{}", base, i);
    if (!contains(name)) return name;
  }
}

}  // namespace kiln::ir
