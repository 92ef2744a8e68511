// Launchers for the STGraphAttention CUDA kernels (no ORT types: plain pointers and sizes).
#pragma once

#include <cstdint>
#include <string>

namespace finsta {
namespace cuda {

struct STGraphAttentionArgs {
  const float *x, *q, *k, *v;
  float* out;
  float* xn;    // scratch [B, L, D]: normalised x
  float* edge;  // scratch [B, L, W]: edge weights of each query's key window, W = max keys
  int64_t B, L, D, H, d, P, T, r, W;
  float tau, scale;
};

// Largest head dim the attention kernel takes (its per-warp shared memory holds 2 d floats).
constexpr int64_t kMaxHeadDim = 1024;

// Launches the three kernels on `stream` (a cudaStream_t). Returns an empty string on success,
// else the CUDA error.
std::string LaunchSTGraphAttention(const STGraphAttentionArgs& args, void* stream);

}  // namespace cuda
}  // namespace finsta
