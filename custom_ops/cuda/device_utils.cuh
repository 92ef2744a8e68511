// Device helpers shared by the CUDA kernels: the warp size, warp-wide sum and max and the conversion of a
// cudaError_t to the launchers' string result. Header-only; include from .cu files.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "../common/st_graph_attention_core.h"  // core::AbsMaxStep

namespace finsta {
namespace cuda {

constexpr int kWarp = 32;

// Sum of v over the 32 lanes of a full warp; every lane gets the result.
__device__ __forceinline__ float WarpSum(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// max |v| over the 32 lanes of a full warp (core::AbsMaxStep: a NaN on any lane wins); every
// lane gets the result.
__device__ __forceinline__ float WarpAbsMax(float m) {
  for (int o = kWarp / 2; o > 0; o >>= 1) m = core::AbsMaxStep(m, __shfl_xor_sync(0xffffffffu, m, o));
  return m;
}

// Empty on success, else CUDA's description of the error.
inline std::string Check(cudaError_t e) {
  return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace finsta
