// Tensor: a dense, owned, 64-byte-aligned buffer with a dtype, static shape and layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/status.h"
#include "ir/types.h"

namespace kiln::ir {

/// Copies share the buffer (like a torch.Tensor handle); `clone()` copies the data.
class Tensor {
 public:
  Tensor() = default;
  /// Zero-filled tensor; `shape` must be static.
  Tensor(DType dtype, Shape shape, Layout layout);
  Tensor(DType dtype, Shape shape);  // default row-major layout of the rank
  static Tensor zeros(const TensorType& type) { return Tensor(type.dtype, type.shape, type.layout); }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  Layout layout() const { return layout_; }
  TensorType type() const { return TensorType{dtype_, shape_, layout_}; }
  int64_t numElements() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtypeSize(dtype_); }
  bool empty() const { return data_ == nullptr && numel_ == 0; }

  std::byte* raw() { return data_.get(); }
  const std::byte* raw() const { return data_.get(); }
  template <typename T>
  T* data() { return reinterpret_cast<T*>(data_.get()); }
  template <typename T>
  const T* data() const { return reinterpret_cast<const T*>(data_.get()); }
  template <typename T>
  std::span<T> span() { return {data<T>(), static_cast<size_t>(numel_)}; }
  template <typename T>
  std::span<const T> span() const { return {data<T>(), static_cast<size_t>(numel_)}; }

  Tensor clone() const;
  /// Same data, new shape with the same element count (row-major only).
  Tensor reshaped(Shape shape) const;
  /// Element i as double (any numeric dtype; f16/bf16 unsupported → NaN).
  double at(int64_t i) const;

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  Layout layout_ = Layout::Scalar;
  int64_t numel_ = 0;
  std::shared_ptr<std::byte[]> data_;
};

/// Tensors bound to graph weights by name (torchvision state_dict keys). Passes that
/// make tensors add entries here under new names.
class WeightStore {
 public:
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const Tensor* find(const std::string& name) const;
  void set(const std::string& name, Tensor t) { tensors_[name] = std::move(t); }
  void erase(const std::string& name) { tensors_.erase(name); }
  /// `base` if free, else `base.1`, `base.2`, …
  std::string uniqueName(const std::string& base) const;
  const std::map<std::string, Tensor>& entries() const { return tensors_; }
  size_t size() const { return tensors_.size(); }

 private:
  std::map<std::string, Tensor> tensors_;
};

}  // namespace kiln::ir
