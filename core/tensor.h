// Tensor: a strided view (sizes, strides in elements, offset in elements) over a shared Storage.
// Views share storage; contiguous() copies only when needed. Autograd metadata hangs off the
// tensor (core/autograd.h) so that ops in kernels/ can record their backward next to their forward.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/storage.h"

namespace y7 {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

struct AutogradMeta;

class Tensor {
 public:
  Tensor() = default;  // undefined tensor

  // ---- factories
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32);
  static Tensor from_storage(std::shared_ptr<Storage> storage, DType dtype, const Shape& shape,
                             const Shape& strides, int64_t offset);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& v, const Shape& shape) {
    Tensor t = empty(shape, dtype_of<T>::value);
    Y7_CHECK(int64_t(v.size()) == t.numel(), "from_vector: ", v.size(), " values for shape ", shape_str(shape));
    std::copy(v.begin(), v.end(), t.data<T>());
    return t;
  }

  // ---- metadata
  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  int64_t dim() const { return int64_t(sizes_.size()); }
  const Shape& sizes() const { return sizes_; }
  const Shape& strides() const { return strides_; }
  int64_t size(int64_t d) const { return sizes_.at(wrap_dim(d)); }
  int64_t stride(int64_t d) const { return strides_.at(wrap_dim(d)); }
  int64_t offset() const { return offset_; }
  int64_t numel() const { return shape_numel(sizes_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  std::string str() const;  // "float32[2,3,4]"

  // ---- data access (CPU). data<T>() checks the dtype.
  void* raw_data() const;
  template <typename T>
  T* data() const {
    Y7_CHECK(dtype_ == dtype_of<T>::value, "tensor is ", dtype_name(dtype_), ", accessed as ",
             dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw_data());
  }
  // Element read as double, by multi-index (slow; tests and tools only).
  double item(const Shape& index = {}) const;

  // ---- views (share storage)
  Tensor view(const Shape& shape) const;  // requires contiguous; one -1 allowed
  Tensor reshape(const Shape& shape) const;  // view if possible, else copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;

  // ---- copies
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;  // casts; returns *this when dtype matches and contiguous
  void copy_(const Tensor& src);  // same shape, any dtypes/strides
  void fill_(double value);

  // ---- autograd hooks (see core/autograd.h)
  const std::shared_ptr<AutogradMeta>& autograd() const { return autograd_; }
  void set_autograd(std::shared_ptr<AutogradMeta> m) { autograd_ = std::move(m); }
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r);
  Tensor grad() const;

  int64_t wrap_dim(int64_t d) const {
    int64_t n = dim();
    if (d < 0) d += n;
    Y7_CHECK(d >= 0 && d < n, "dimension ", d, " out of range for ", str());
    return d;
  }

 private:
  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::F32;
  Shape sizes_, strides_;
  int64_t offset_ = 0;
  std::shared_ptr<AutogradMeta> autograd_;
};

// max |a-b| over all elements (both converted to double); shapes must match.
double max_abs_diff(const Tensor& a, const Tensor& b);
double max_abs(const Tensor& a);

}  // namespace y7
