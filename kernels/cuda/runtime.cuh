#pragma once
// What every kernels/cuda/*.cu includes first. nvcc builds the files for the GPU; a plain C++ compiler
// builds the same files through the emulation layer (kernels/cuda/emu/cuda_emu.hpp), which the op table
// runs in CI. The two builds put their functions in different namespaces, so one binary can hold both:
//   lt::cuda      the GPU build (nvcc)
//   lt::cuda_emu  the emulated build (host C++)
// A kernel is launched with LT_LAUNCH(kernel, grid, block, stream)(args…), never with <<<…>>>, and uses
// only what the emulation provides (see its header): __shared__ arrays of fixed size and __syncthreads
// for block reductions, atomics, no warp intrinsics, no dynamic shared memory.
// 16-bit floats (__half, __nv_bfloat16) are used only through their conversion functions
// (__float2half_rn, __half2float, __float2bfloat16_rn, __bfloat162float): the emulation provides those,
// rounded as the GPU rounds (kernels/cuda/emu/half_types.hpp).
#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define LT_CUDA_NS cuda
#define LT_LAUNCH(kernel, grid, block, stream) kernel<<<(grid), (block), 0, (stream)>>>
#else
#include "kernels/cuda/emu/cuda_emu.hpp"
#define LT_CUDA_NS cuda_emu
#endif

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace lt::LT_CUDA_NS {

// A failure inside a kernel launch or copy is a broken invariant (the caller checked for a device
// first): reported, and the process aborts.
inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "lidartrain: CUDA error in %s: %s\n", what, cudaGetErrorString(status));
    std::abort();
  }
}

// The stream every op of the backend runs on, in order (created at first use, non-blocking: it does not
// wait for the legacy null stream, nor it for it). Downloads go on it too, so the host's reads see every op
// before them; uploads go on a copy stream, ordered with this one by events (memory.cu). Nothing waits for
// the device as a whole.
cudaStream_t stream();

constexpr int kThreads = 256;  // threads per block of the element-wise and reduction kernels

// Blocks for one thread per element, capped; kernels loop with a grid stride past the cap.
inline unsigned blocks_for(int64_t elements) {
  const int64_t blocks = (elements + kThreads - 1) / kThreads;
  return unsigned(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

}  // namespace lt::LT_CUDA_NS
