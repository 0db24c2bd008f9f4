#include "io/npy.h"

#include <cstring>
#include <regex>

#include "io/file_util.h"

namespace y7::io {

namespace {

DType dtype_from_descr(const std::string& d, const std::string& what) {
  Y7_CHECK(d.size() >= 3, what, ": bad dtype '", d, "'");
  char endian = d[0];
  std::string code = d.substr(1);
  Y7_CHECK(endian == '<' || endian == '|' || endian == '=', what, ": big-endian arrays are not supported ('", d, "')");
  if (code == "f4") return DType::F32;
  if (code == "f2") return DType::F16;
  if (code == "f8") return DType::F64;
  if (code == "i1") return DType::I8;
  if (code == "u1") return DType::U8;
  if (code == "i4") return DType::I32;
  if (code == "i8") return DType::I64;
  if (code == "b1") return DType::Bool;
  fail(what, ": unsupported dtype '", d, "'");
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F16: return "<f2";
    case DType::F64: return "<f8";
    case DType::I8: return "|i1";
    case DType::U8: return "|u1";
    case DType::I32: return "<i4";
    case DType::I64: return "<i8";
    case DType::Bool: return "|b1";
    case DType::BF16: break;
  }
  fail("npy: cannot write ", dtype_name(t));
}

}  // namespace

Tensor parse_npy(const void* data, size_t size, const std::string& what) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  Y7_CHECK(size >= 10 && std::memcmp(p, "\x93NUMPY", 6) == 0, what, ": not a .npy file");
  int major = p[6];
  size_t hlen, hstart;
  if (major == 1) {
    hlen = p[8] | (size_t(p[9]) << 8);
    hstart = 10;
  } else {
    Y7_CHECK(major == 2 || major == 3, what, ": unsupported .npy version ", major);
    Y7_CHECK(size >= 12, what, ": truncated header");
    hlen = p[8] | (size_t(p[9]) << 8) | (size_t(p[10]) << 16) | (size_t(p[11]) << 24);
    hstart = 12;
  }
  Y7_CHECK(hstart + hlen <= size, what, ": truncated header");
  std::string h(reinterpret_cast<const char*>(p + hstart), hlen);
  std::smatch m;
  Y7_CHECK(std::regex_search(h, m, std::regex("'descr'\\s*:\\s*'([^']*)'")), what, ": header without descr");
  DType dt = dtype_from_descr(m[1], what);
  Y7_CHECK(std::regex_search(h, m, std::regex("'fortran_order'\\s*:\\s*(True|False)")), what, ": header without fortran_order");
  bool fortran = m[1] == "True";
  Y7_CHECK(std::regex_search(h, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")), what, ": header without shape");
  Shape shape;
  std::string s = m[1];
  std::regex num("(\\d+)");
  for (auto it = std::sregex_iterator(s.begin(), s.end(), num); it != std::sregex_iterator(); ++it) {
    Y7_CHECK(it->str().size() < 13, what, ": dimension too large");
    shape.push_back(std::stoll(it->str()));
  }
  int64_t n = 1;
  for (int64_t d : shape) {
    Y7_CHECK(d == 0 || n <= (int64_t(1) << 40) / d, what, ": array too large");
    n *= d;
  }
  size_t need = size_t(n) * dtype_size(dt);
  Y7_CHECK(hstart + hlen + need <= size, what, ": data truncated (", size - hstart - hlen, " of ", need, " bytes)");
  Tensor t = Tensor::empty(shape, dt);
  if (need) std::memcpy(t.raw_data(), p + hstart + hlen, need);
  if (fortran && shape.size() > 1) {
    Shape rev(shape.rbegin(), shape.rend());
    std::vector<int64_t> perm;
    for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) perm.push_back(i);
    Tensor f = Tensor::empty(rev, dt);
    std::memcpy(f.raw_data(), p + hstart + hlen, need);
    t = f.permute(perm).contiguous();
  }
  return t;
}

Tensor read_npy(const std::string& path) {
  auto buf = read_file(path);
  return parse_npy(buf.data(), buf.size(), path);
}

std::string encode_npy(const Tensor& t) {
  Tensor c = t.contiguous();
  std::string shape = "(";
  for (size_t i = 0; i < c.sizes().size(); ++i) shape += std::to_string(c.sizes()[i]) + (c.sizes().size() == 1 ? "," : (i + 1 < c.sizes().size() ? ", " : ""));
  shape += ")";
  std::string h = std::string("{'descr': '") + descr_of(c.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + h.size() + 1;
  size_t pad = (64 - total % 64) % 64;
  h += std::string(pad, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += char(1);
  out += char(0);
  out += char(h.size() & 0xff);
  out += char((h.size() >> 8) & 0xff);
  out += h;
  out.append(static_cast<const char*>(c.raw_data()), c.nbytes());
  return out;
}

void write_npy(const std::string& path, const Tensor& t) {
  std::string out = encode_npy(t);
  write_file_atomic(path, out.data(), out.size());
}

}  // namespace y7::io
