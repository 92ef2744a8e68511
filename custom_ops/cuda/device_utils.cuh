// Device helpers shared by the CUDA kernels: the warp size, a warp-wide sum and the conversion of a
// cudaError_t to the launchers' string result. Header-only; include from .cu files.
#pragma once

#include <cuda_runtime.h>

#include <string>

namespace finsta {
namespace cuda {

constexpr int kWarp = 32;

// Sum of v over the 32 lanes of a full warp; every lane gets the result.
__device__ __forceinline__ float WarpSum(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Empty on success, else CUDA's description of the error.
inline std::string Check(cudaError_t e) { return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e)); }

}  // namespace cuda
}  // namespace finsta
