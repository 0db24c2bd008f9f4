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

// How conv2d lays out activations for oneDNN (the API takes NCHW-sized tensors with any strides):
//  Plain   - the convolution reads/writes the caller's tensors directly (oneDNN's gemm-based
//            convolution for NCHW; its direct kernels for dense channels-last);
//  Blocked - src/dst format `any`: oneDNN picks its preferred layout (channels-last for f32 with
//            the 2.6 brgconv kernels on AVX-512) and we reorder the caller's tensors around it,
//            skipping reorders that are identities (dense channels-last callers pay none);
//  Auto    - the default; currently Blocked, which was faster on every YOLOv7 layer shape
//            measured (bench/bench_kernels.cpp).
// A process-wide knob for benchmarks and experiments; primitives are cached per layout.
enum class ConvLayout { Plain, Blocked, Auto };
void set_conv_layout(ConvLayout l);
ConvLayout conv_layout();

}  // namespace y7::ops::dnnl_util
#endif
