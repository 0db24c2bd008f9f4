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
//  Plain        - the convolution reads/writes the caller's tensors directly (oneDNN's gemm-based
//                 convolution for NCHW; its direct kernels for dense channels-last);
//  Blocked      - src/dst format `any` with prop_kind forward_training, as PyTorch's ideep asks:
//                 oneDNN 2.6 picks its jit kernels on nChw16c (nChw8c on AVX2) and we reorder
//                 around them. Same kernels and arithmetic as PyTorch 1.13 wherever it routes a
//                 convolution to oneDNN (it keeps 1x1 convs on its own GEMM when single-threaded,
//                 and small inputs of <= 20480 elements always);
//  ChannelsLast - src/dst format `any` with forward_inference: 2.6 picks brgconv on NHWC;
//  Auto         - the default: ChannelsLast for channels-last callers (no reorders at all),
//                 Blocked otherwise. On YOLOv7 layer shapes, Blocked beat Plain (1.2-4x) and
//                 ChannelsLast-with-reorders (1.1-1.7x) for NCHW tensors (bench/bench_kernels.cpp).
// Primitives are cached per layout. The initial value comes from the environment variable
// Y7_CONV_LAYOUT (plain, blocked, channels_last, auto) when set, for experiments.
enum class ConvLayout { Plain, Blocked, ChannelsLast, Auto };
void set_conv_layout(ConvLayout l);
ConvLayout conv_layout();

}  // namespace y7::ops::dnnl_util
#endif
