// Arithmetic shared by several ops' CUDA kernels, their CPU kernels and the host twin
// (custom_ops/tests/cuda_twin.cc). No ORT or CUDA headers: plain functions, host and device.
#pragma once

#include <cstdint>
#include <initializer_list>

#if defined(__CUDACC__)
#define FINSTA_HD __host__ __device__ __forceinline__
#else
#define FINSTA_HD inline
#include <cmath>
#endif

namespace finsta {
namespace core {

// Largest element count any index arithmetic may reach: far below the int64 range, so that no
// product of sizes in the kernels can overflow.
constexpr int64_t kMaxElements = 9'000'000'000'000'000;

// True when the product of `dims`, each taken as at least 1, is at most kMaxElements. Counting a
// zero as 1 bounds every partial product, in any order, even of an empty tensor's other dims.
// Host only (the checks run before any launch).
inline bool ProductFits(std::initializer_list<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims)
    if (__builtin_mul_overflow(p, d > 1 ? d : 1, &p) || p > kMaxElements) return false;
  return true;
}

// Online softmax: running max m, running sum l. Adding a logit returns the factor that
// rescales the accumulated sums and writes the weight of the new term. A -inf logit (an edge whose
// Gaussian weight underflows) weighs 0, also before any finite logit has been seen.
struct OnlineSoftmax {
  float m;
  float l;
};

FINSTA_HD OnlineSoftmax OnlineSoftmaxInit() { return OnlineSoftmax{-INFINITY, 0.f}; }

FINSTA_HD float OnlineSoftmaxAdd(OnlineSoftmax* s, float logit, float* weight) {
  if (logit > s->m) {
    const float rescale = expf(s->m - logit);  // exp(-inf) = 0 on the first term
    s->l = s->l * rescale + 1.f;
    s->m = logit;
    *weight = 1.f;
    return rescale;
  }
  *weight = logit == -INFINITY ? 0.f : expf(logit - s->m);  // -inf - (-inf) would be NaN
  s->l += *weight;
  return 1.f;
}

// Adjacency [B, N, N] read as bytes (any non-zero byte is an edge: reading ORT's bool storage as
// C++ bool would be undefined for bytes other than 0 and 1).
FINSTA_HD bool HasEdge(const uint8_t* adj, int64_t N, int64_t b, int64_t i, int64_t j) {
  return adj[(b * N + i) * N + j] != 0;
}

// Node index b * N + n of a missing self-loop, as found by one check thread; kNoMissingNode if none.
constexpr unsigned long long kNoMissingNode = ~0ull;

FINSTA_HD unsigned long long MissingSelfLoop(const uint8_t* adj, int64_t N, int64_t node) {
  const int64_t b = node / N, n = node % N;
  return HasEdge(adj, N, b, n, n) ? kNoMissingNode : static_cast<unsigned long long>(node);
}

}  // namespace core
}  // namespace finsta
