// Small dense kernels for the CPU ops: a packed-panel GEMM (C = A * B) and a vectorisable exp.
// B is packed into column panels of kPanel floats: panel p holds B[:, 16p : 16p + 16] as [K][16],
// zero-padded, so the micro-kernel needs no edge cases in N. The hot loops are compiled for
// AVX2+FMA and for the baseline ISA; the loader picks one at run time (GCC target_clones).
#pragma once

#include <cstdint>

namespace finsta {
namespace cpu {

constexpr int64_t kPanel = 16;

inline int64_t NumPanels(int64_t n) { return (n + kPanel - 1) / kPanel; }

// Packs B^T where `src` is [N rows, K] row-major with row stride `ld`: panels of B = src^T [K, N].
void PackTransposed(const float* src, int64_t n, int64_t k, int64_t ld, float* panels);
// Packs B where `src` is [K rows, N] row-major with row stride `ld`. Rows k >= k_valid are zero.
void PackRows(const float* src, int64_t k_valid, int64_t k, int64_t n, int64_t ld, float* panels);

// C[M, 16 * npanels] = A[M, K] * B (packed), A row stride lda, C row stride ldc.
void GemmPacked(int64_t m, int64_t npanels, int64_t k, const float* a, int64_t lda, const float* panels, float* c,
                int64_t ldc);

// Masked row softmax in place: row[j] <- exp(row[j] - max) / sum over j with weight[j] != 0,
// and 0 where weight[j] == 0. At least one weight must be non-zero (STGraphAttention's self-loop).
void MaskedSoftmaxRow(float* row, const float* weight, int64_t n);

// out[c] = a[c] * b[c] * e[c] for c < n; returns the sum of out (EdgeGraphAttention's score row).
float TripleProductSum(const float* a, const float* b, const float* e, float* out, int64_t n);

// y[c] += alpha * x[c] for c < n.
void Axpy(float alpha, const float* x, float* y, int64_t n);

}  // namespace cpu
}  // namespace finsta
