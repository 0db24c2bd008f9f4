// oneDNN plumbing shared by the kernels that use it: one global CPU engine, a stream per thread,
// memory descriptors for strided y7 tensors, and per-thread scratch buffers for layout reorders.
#pragma once
#ifdef Y7_USE_DNNL
#include <cstddef>

#include <dnnl.hpp>

#include "core/tensor.h"

namespace y7::ops::dnnl_util {

dnnl::engine& engine();
dnnl::stream& stream();  // one per calling thread (streams are not shared across threads)

// f32 descriptor with the tensor's own sizes and strides (a plain or strided NCHW view).
dnnl::memory::desc md_of(const Tensor& t);
dnnl::memory mem_of(const Tensor& t);
dnnl::memory mem_of(const dnnl::memory::desc& md, const Tensor& t);

// Per-thread growable 64-byte-aligned scratch, `slot` 0..3; valid until the next call with the
// same slot on the same thread.
void* scratch(int slot, size_t bytes);

// Threads oneDNN will use for the next primitive (part of every primitive cache key, since
// oneDNN fixes its work split when a primitive is created).
int max_threads();

// How conv2d lays out activations for oneDNN (the API boundary is always plain NCHW):
//  Plain   - the convolution reads/writes the NCHW (possibly strided) tensors directly;
//  Blocked - oneDNN picks src/dst formats (nChw16c on AVX-512) and we reorder around it;
//  Auto    - per layer, whichever the measurements in bench/bench_kernels.cpp favour.
// A process-wide knob for benchmarks and experiments; primitives are cached per layout.
enum class ConvLayout { Plain, Blocked, Auto };
void set_conv_layout(ConvLayout l);
ConvLayout conv_layout();

}  // namespace y7::ops::dnnl_util
#endif
