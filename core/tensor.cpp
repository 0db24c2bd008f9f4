#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/autograd.h"

namespace y7 {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t v : shape) Y7_CHECK(v >= 0, "negative size in shape ", shape_str(shape));
  Tensor t;
  t.storage_ = Storage::allocate(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  t.dtype_ = dtype;
  t.sizes_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, DType dtype, const Shape& shape,
                            const Shape& strides, int64_t offset) {
  Y7_CHECK(storage != nullptr, "from_storage: null storage");
  Y7_CHECK(shape.size() == strides.size(), "from_storage: ", shape.size(), " sizes but ", strides.size(),
           " strides");
  Y7_CHECK(offset >= 0, "from_storage: negative offset ", offset);
  // The furthest element must lie inside the storage (computed in 128 bits: hostile sizes and
  // strides must not overflow).
  __int128 lo = offset, hi = offset;
  bool empty = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    Y7_CHECK(shape[i] >= 0, "from_storage: negative size in ", shape_str(shape));
    if (shape[i] == 0) empty = true;
    if (shape[i] > 1) {
      __int128 span = __int128(shape[i] - 1) * strides[i];
      if (span > 0) hi += span; else lo += span;
    }
  }
  __int128 count = 1;
  for (int64_t v : shape) count = count * v > (__int128(1) << 62) ? (__int128(1) << 62) + 1 : count * v;
  Y7_CHECK(count <= (__int128(1) << 62), "from_storage: shape ", shape_str(shape), " is too large");
  int64_t cap = int64_t(storage->nbytes() / dtype_size(dtype));
  if (!empty) Y7_CHECK(lo >= 0 && hi < cap, "tensor ", shape_str(shape), " at offset ", offset,
                       " reaches outside its storage of ", cap, " elements");
  Tensor t;
  t.storage_ = std::move(storage);
  t.dtype_ = dtype;
  t.sizes_ = shape;
  t.strides_ = strides;
  t.offset_ = offset;
  return t;
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (sizes_[i] == 1) continue;
    if (strides_[i] != acc) return false;
    acc *= sizes_[i];
  }
  return true;
}

std::string Tensor::str() const { return std::string(dtype_name(dtype_)) + shape_str(sizes_); }

void* Tensor::raw_data() const {
  Y7_CHECK(storage_ != nullptr, "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * int64_t(dtype_size(dtype_));
}

namespace {

double load(const void* p, DType t) {
  switch (t) {
    case DType::F32: return *static_cast<const float*>(p);
    case DType::F16: return half_to_float(*static_cast<const uint16_t*>(p));
    case DType::BF16: return bf16_to_float(*static_cast<const uint16_t*>(p));
    case DType::F64: return *static_cast<const double*>(p);
    case DType::I8: return *static_cast<const int8_t*>(p);
    case DType::U8: return *static_cast<const uint8_t*>(p);
    case DType::I32: return *static_cast<const int32_t*>(p);
    case DType::I64: return double(*static_cast<const int64_t*>(p));
    case DType::Bool: return *static_cast<const uint8_t*>(p) ? 1.0 : 0.0;
  }
  return 0;
}

void store(void* p, DType t, double v) {
  switch (t) {
    case DType::F32: *static_cast<float*>(p) = float(v); break;
    case DType::F16: *static_cast<uint16_t*>(p) = float_to_half(float(v)); break;
    case DType::BF16: *static_cast<uint16_t*>(p) = float_to_bf16(float(v)); break;
    case DType::F64: *static_cast<double*>(p) = v; break;
    case DType::I8: *static_cast<int8_t*>(p) = int8_t(v); break;
    case DType::U8: *static_cast<uint8_t*>(p) = uint8_t(v); break;
    case DType::I32: *static_cast<int32_t*>(p) = int32_t(v); break;
    case DType::I64: *static_cast<int64_t*>(p) = int64_t(v); break;
    case DType::Bool: *static_cast<uint8_t*>(p) = v != 0; break;
  }
}

// Calls f(dst_offset, src_offset) in elements for every index of `sizes`, innermost fastest.
template <typename F>
void for_each2(const Shape& sizes, const Shape& sa, const Shape& sb, F&& f) {
  int64_t n = shape_numel(sizes);
  if (n == 0) return;
  int64_t nd = int64_t(sizes.size());
  if (nd == 0) {
    f(0, 0);
    return;
  }
  std::vector<int64_t> idx(nd, 0);
  int64_t oa = 0, ob = 0;
  int64_t inner = sizes[nd - 1], ia = sa[nd - 1], ib = sb[nd - 1];
  for (int64_t done = 0; done < n; done += inner) {
    for (int64_t i = 0; i < inner; ++i) f(oa + i * ia, ob + i * ib);
    for (int64_t d = nd - 2; d >= 0; --d) {
      ++idx[d];
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < sizes[d]) break;
      oa -= sa[d] * sizes[d];
      ob -= sb[d] * sizes[d];
      idx[d] = 0;
    }
  }
}

}  // namespace

double Tensor::item(const Shape& index) const {
  Y7_CHECK(int64_t(index.size()) == dim() || (index.empty() && numel() == 1), "item: index rank ",
           index.size(), " for ", str());
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    Y7_CHECK(index[i] >= 0 && index[i] < sizes_[i], "item: index out of range for ", str());
    off += index[i] * strides_[i];
  }
  return load(static_cast<char*>(raw_data()) + off * int64_t(dtype_size(dtype_)), dtype_);
}

Tensor Tensor::view(const Shape& shape) const {
  Shape s = shape;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      Y7_CHECK(infer < 0, "view: more than one -1 in ", shape_str(shape));
      infer = int64_t(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    Y7_CHECK(known > 0 && numel() % known == 0, "view: cannot infer ", shape_str(shape), " from ", str());
    s[infer] = numel() / known;
  }
  Y7_CHECK(shape_numel(s) == numel(), "view: ", shape_str(shape), " does not match ", str());
  Y7_CHECK(is_contiguous(), "view: tensor ", str(), " is not contiguous");
  Tensor t = *this;
  t.sizes_ = s;
  t.strides_ = contiguous_strides(s);
  t.autograd_.reset();
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const { return is_contiguous() ? view(shape) : contiguous().view(shape); }

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  Y7_CHECK(int64_t(dims.size()) == dim(), "permute: ", dims.size(), " dims for ", str());
  Tensor t = *this;
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i]);
    Y7_CHECK(!seen[d], "permute: repeated dim");
    seen[d] = true;
    t.sizes_[i] = sizes_[d];
    t.strides_[i] = strides_[d];
  }
  t.autograd_.reset();
  return t;
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d);
  Y7_CHECK(step > 0, "slice: step must be positive");
  int64_t n = sizes_[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Tensor t = *this;
  t.offset_ += start * strides_[d];
  t.sizes_[d] = (end - start + step - 1) / step;
  t.strides_[d] *= step;
  t.autograd_.reset();
  return t;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d);
  if (index < 0) index += sizes_[d];
  Y7_CHECK(index >= 0 && index < sizes_[d], "select: index out of range for ", str());
  Tensor t = *this;
  t.offset_ += index * strides_[d];
  t.sizes_.erase(t.sizes_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  t.autograd_.reset();
  return t;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  if (d < 0) d += dim() + 1;
  Y7_CHECK(d >= 0 && d <= dim(), "unsqueeze: bad dim");
  Tensor t = *this;
  int64_t st = d < dim() ? strides_[d] * sizes_[d] : 1;
  t.sizes_.insert(t.sizes_.begin() + d, 1);
  t.strides_.insert(t.strides_.begin() + d, st);
  t.autograd_.reset();
  return t;
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d);
  if (sizes_[d] != 1) return *this;
  Tensor t = *this;
  t.sizes_.erase(t.sizes_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  t.autograd_.reset();
  return t;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor t = empty(sizes_, dtype_, device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype_ && is_contiguous()) return *this;
  Tensor t = empty(sizes_, dt, device());
  t.copy_(*this);
  return t;
}

void Tensor::copy_(const Tensor& src) {
  Y7_CHECK(src.sizes_ == sizes_, "copy_: shape ", shape_str(src.sizes_), " into ", shape_str(sizes_));
  Y7_CHECK(device().is_cpu() && src.device().is_cpu(), "copy_: only CPU tensors here");
  char* d = static_cast<char*>(raw_data());
  const char* s = static_cast<const char*>(src.raw_data());
  size_t ds = dtype_size(dtype_), ss = dtype_size(src.dtype_);
  if (dtype_ == src.dtype_ && is_contiguous() && src.is_contiguous()) {
    std::memmove(d, s, nbytes());
    return;
  }
  if (dtype_ == src.dtype_) {
    if (ds == 4) {
      for_each2(sizes_, strides_, src.strides_, [&](int64_t a, int64_t b) {
        reinterpret_cast<uint32_t*>(d)[a] = reinterpret_cast<const uint32_t*>(s)[b];
      });
    } else {
      for_each2(sizes_, strides_, src.strides_,
                [&](int64_t a, int64_t b) { std::memcpy(d + a * ds, s + b * ss, ds); });
    }
    return;
  }
  if (dtype_ == DType::F32 && src.dtype_ == DType::F16) {
    for_each2(sizes_, strides_, src.strides_, [&](int64_t a, int64_t b) {
      reinterpret_cast<float*>(d)[a] = half_to_float(reinterpret_cast<const uint16_t*>(s)[b]);
    });
    return;
  }
  DType dt = dtype_, st = src.dtype_;
  for_each2(sizes_, strides_, src.strides_,
            [&](int64_t a, int64_t b) { store(d + a * ds, dt, load(s + b * ss, st)); });
}

void Tensor::fill_(double value) {
  char* d = static_cast<char*>(raw_data());
  size_t ds = dtype_size(dtype_);
  DType dt = dtype_;
  for_each2(sizes_, strides_, strides_, [&](int64_t a, int64_t) { store(d + a * ds, dt, value); });
}

bool Tensor::requires_grad() const { return autograd_ && autograd_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool r) {
  if (!autograd_) autograd_ = std::make_shared<AutogradMeta>();
  autograd_->requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const { return autograd_ ? autograd_->grad : Tensor(); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  Y7_CHECK(a.sizes() == b.sizes(), "max_abs_diff: ", a.str(), " vs ", b.str());
  Tensor x = a.to(DType::F64), y = b.to(DType::F64);
  const double *p = x.data<double>(), *q = y.data<double>();
  double m = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    double d = std::fabs(p[i] - q[i]);
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

double max_abs(const Tensor& a) {
  Tensor x = a.to(DType::F64);
  const double* p = x.data<double>();
  double m = 0;
  for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, std::fabs(p[i]));
  return m;
}

}  // namespace y7
