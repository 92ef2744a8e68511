// Small dense kernels for the CPU ops: a packed-panel GEMM (C = A * B) and a vectorisable exp.
// B is packed into column panels of kPanel floats: a panel holds 16 columns of B as [K][16],
// zero-padded, so the micro-kernel (6 rows x 16 columns of C in registers) needs no edge cases in N.
// The hot loops are compiled for AVX2+FMA and for the baseline ISA; the loader picks one at run
// time (GCC target_clones), so the library loads and is correct on a CPU without AVX2.
#pragma once

#include <cstdint>

namespace finsta {
namespace cpu {

constexpr int64_t kPanel = 16;

inline int64_t NumPanels(int64_t n) { return (n + kPanel - 1) / kPanel; }

// Packs B^T where `src` is [N rows, K] row-major with row stride `ld`: panels of B = src^T [K, N],
// only the columns j in [j_begin, j_end) (within whole panels: other lanes are left as they are);
// lanes of columns j >= n are zero.
void PackTransposedRange(const float* src, int64_t n, int64_t k, int64_t ld, int64_t j_begin, int64_t j_end,
                         float* panels);
// Every panel of B = src^T.
inline void PackTransposed(const float* src, int64_t n, int64_t k, int64_t ld, float* panels) {
  PackTransposedRange(src, n, k, ld, 0, NumPanels(n) * kPanel, panels);
}
// Packs B where `src` is [K rows, N] row-major with row stride `ld`. Rows k >= k_valid are zero.
void PackRows(const float* src, int64_t k_valid, int64_t k, int64_t n, int64_t ld, float* panels);

// C[M, 16 * npanels] = A[M, K] * B, A row stride lda, C row stride ldc; panel p of B ([K][16]) starts
// at panels + p * panel_stride, so B may be a window of rows or panels of a larger packed matrix.
void GemmPanels(int64_t m, int64_t npanels, int64_t k, const float* a, int64_t lda, const float* panels,
                int64_t panel_stride, float* c, int64_t ldc);

// GemmPanels on contiguous panels (PackTransposed, PackRows).
inline void GemmPacked(int64_t m, int64_t npanels, int64_t k, const float* a, int64_t lda, const float* panels,
                       float* c, int64_t ldc) {
  GemmPanels(m, npanels, k, a, lda, panels, k * kPanel, c, ldc);
}

// STGraphAttention's row normalisation: out = x / max(|x|, 1e-12) over n values, as core::RowNormScale
// defines it (no |x|^2, which overflows float32 above |x| ~ 1e19; a non-finite x gives a NaN row).
void NormaliseRow(const float* x, int64_t n, float* out);

// Masked row softmax in place: row[j] <- exp(row[j] - max) / sum over j with weight[j] != 0,
// and 0 where weight[j] == 0. At least one weight must be non-zero (STGraphAttention's self-loop).
void MaskedSoftmaxRow(float* row, const float* weight, int64_t n);

// STGraphAttention's weighted logits, unnormalised: with l[j] = scale * row[j] * weight[j],
// row[j] <- exp(l[j] - max) over j with weight[j] != 0, and 0 where weight[j] == 0; returns the sum
// (the caller divides the product with V by it: one pass less over the row). A NaN weight or logit
// makes the sum NaN.
float WeightedMaskedExpRow(float* row, const float* weight, float scale, int64_t n);

// out[c] = a[c] * b[c] * e[c] for c < n; returns the sum of out (EdgeGraphAttention's score row).
float TripleProductSum(const float* a, const float* b, const float* e, float* out, int64_t n);

// y[c] += alpha * x[c] for c < n.
void Axpy(float alpha, const float* x, float* y, int64_t n);

}  // namespace cpu
}  // namespace finsta
