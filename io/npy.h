// NumPy .npy files (format 1.0-3.0): read any little-endian numeric array, write float32/int64/...
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"

namespace y7::io {

Tensor read_npy(const std::string& path);
Tensor parse_npy(const void* data, size_t size, const std::string& what = "npy");
// The bytes of a .npy file (format 1.0) holding t (written contiguous).
std::string encode_npy(const Tensor& t);
// Writes atomically (temp file + rename). Non-contiguous tensors are written contiguous.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace y7::io
