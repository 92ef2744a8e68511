#include "dense_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../common/st_graph_attention_core.h"

namespace finsta {
namespace cpu {
namespace {

typedef float v8f __attribute__((vector_size(32)));

inline v8f Load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void Store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }

// Cephes-style expf: 2^n * p(x), about 2 ulp, no branches so the loops below vectorise.
inline float ExpApprox(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  float fx = x * 1.44269504088896341f + 0.5f;
  float t = static_cast<float>(static_cast<int32_t>(fx));
  t -= (t > fx) ? 1.f : 0.f;  // floor
  x = x - t * 0.693359375f + t * 2.12194440e-4f;
  const float z = x * x;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.f;
  const int32_t bits = (static_cast<int32_t>(t) + 127) << 23;
  float p;
  std::memcpy(&p, &bits, sizeof p);
  return y * p;
}

typedef int32_t v8i __attribute__((vector_size(32)));

// ExpApprox on 8 lanes (same constants and steps).
inline v8f Exp8(v8f x) {
  const v8f lo = v8f{} - 87.3f, hi = v8f{} + 88.3f, one = v8f{} + 1.f, zero = v8f{};
  x = x < lo ? lo : (x > hi ? hi : x);
  const v8f fx = x * 1.44269504088896341f + 0.5f;
  v8f t = __builtin_convertvector(__builtin_convertvector(fx, v8i), v8f);
  t -= (t > fx) ? one : zero;  // floor
  x = x - t * 0.693359375f + t * 2.12194440e-4f;
  const v8f z = x * x;
  v8f y = x * 1.9875691500e-4f + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.f;
  const v8i bits = (__builtin_convertvector(t, v8i) + 127) << 23;
  return y * (v8f)bits;  // same-size vector cast: reinterprets the bits
}

// Rows of C per micro-tile: 6 x 16 floats of C are 12 AVX2 registers, leaving 2 for the B row and 1
// for the broadcast A value (of 16), so each step issues 12 FMAs against 8 loads.
constexpr int kTileRows = 6;

// C[R, 16] = A[R, K] * panel[K][16], accumulated in registers. Inlined into each clone of GemmPanels.
template <int R>
__attribute__((always_inline)) inline void Tile(int64_t k, const float* a, int64_t lda, const float* panel, float* c,
                                                int64_t ldc) {
  v8f c0[R], c1[R];
  for (int r = 0; r < R; ++r) {
    c0[r] = v8f{};
    c1[r] = v8f{};
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    const v8f b0 = Load8(panel + kk * kPanel), b1 = Load8(panel + kk * kPanel + 8);
    for (int r = 0; r < R; ++r) {
      const float av = a[r * lda + kk];
      c0[r] += av * b0;
      c1[r] += av * b1;
    }
  }
  for (int r = 0; r < R; ++r) {
    Store8(c + r * ldc, c0[r]);
    Store8(c + r * ldc + 8, c1[r]);
  }
}

// Every row tile of C[M, 16] = A[M, K] * panel[K][16].
__attribute__((always_inline)) inline void RowTiles(int64_t m, int64_t k, const float* a, int64_t lda,
                                                    const float* panel, float* c, int64_t ldc) {
  int64_t i = 0;
  for (; i + kTileRows <= m; i += kTileRows) Tile<kTileRows>(k, a + i * lda, lda, panel, c + i * ldc, ldc);
  a += i * lda;
  c += i * ldc;
  switch (m - i) {
    case 5:
      Tile<5>(k, a, lda, panel, c, ldc);
      break;
    case 4:
      Tile<4>(k, a, lda, panel, c, ldc);
      break;
    case 3:
      Tile<3>(k, a, lda, panel, c, ldc);
      break;
    case 2:
      Tile<2>(k, a, lda, panel, c, ldc);
      break;
    case 1:
      Tile<1>(k, a, lda, panel, c, ldc);
      break;
    default:
      break;
  }
}

// The masked exponentials of a row, in place, and their sum: the entries with weight[j] != 0 get
// exp(l[j] - max l), the others 0, where l = scale * row * weight (kWeighted) or l = row. Masked
// entries are computed too (branch-free) and then zeroed. A NaN l stays NaN through the exp, so the sum
// is NaN (the max may skip it: a NaN compares false).
template <bool kWeighted>
__attribute__((always_inline)) inline float MaskedExpRow(float* row, const float* weight, float scale, int64_t n) {
  const v8f neg_inf = v8f{} - INFINITY, zero = v8f{};
  const int64_t n8 = n - n % 8;
  v8f vmx = neg_inf;
  for (int64_t j = 0; j < n8; j += 8) {
    const v8f w = Load8(weight + j);
    v8f l = Load8(row + j);
    if (kWeighted) {
      l = scale * l * w;
      Store8(row + j, l);
    }
    const v8f cand = (w != 0.f) ? l : neg_inf;
    vmx = (vmx > cand) ? vmx : cand;
  }
  float mx = -INFINITY;
  for (int l = 0; l < 8; ++l) mx = vmx[l] > mx ? vmx[l] : mx;
  for (int64_t j = n8; j < n; ++j) {
    if (kWeighted) row[j] = scale * row[j] * weight[j];
    if (weight[j] != 0.f && row[j] > mx) mx = row[j];
  }
  v8f acc = zero;
  for (int64_t j = 0; j < n8; j += 8) {
    const v8f e = Exp8(Load8(row + j) - mx), w = Load8(weight + j);
    const v8f p = (w != 0.f) ? e : zero;
    Store8(row + j, p);
    acc += p;
  }
  float sum = 0.f;
  for (int l = 0; l < 8; ++l) sum += acc[l];
  for (int64_t j = n8; j < n; ++j) {
    row[j] = weight[j] != 0.f ? ExpApprox(row[j] - mx) : 0.f;
    sum += row[j];
  }
  return sum;
}

}  // namespace

void PackTransposedRange(const float* src, int64_t n, int64_t k, int64_t ld, int64_t j_begin, int64_t j_end,
                         float* panels) {
  // Panel by panel: the 16 source rows of a panel are read in step (16 streams), its [K][16] written
  // in order, so neither side strides through more than 16 cache lines at once.
  for (int64_t p = j_begin / kPanel; p * kPanel < j_end; ++p) {
    const int64_t lo = std::max(j_begin, p * kPanel) - p * kPanel,
                  hi = std::min(j_end, p * kPanel + kPanel) - p * kPanel;
    const int64_t valid = std::min(hi, std::max<int64_t>(lo, n - p * kPanel));  // lanes [lo, valid) have a row
    const float* s = src + p * kPanel * ld;
    float* dst = panels + p * kPanel * k;
    for (int64_t kk = 0; kk < k; ++kk) {
      float* d = dst + kk * kPanel;
      for (int64_t l = lo; l < valid; ++l) d[l] = s[l * ld + kk];
      for (int64_t l = valid; l < hi; ++l) d[l] = 0.f;
    }
  }
}

void PackRows(const float* src, int64_t k_valid, int64_t k, int64_t n, int64_t ld, float* panels) {
  for (int64_t p = 0; p < NumPanels(n); ++p) {
    const int64_t w = std::min(kPanel, n - p * kPanel);  // columns of this panel in src
    float* dst = panels + p * kPanel * k;
    for (int64_t kk = 0; kk < k_valid; ++kk) {
      std::memcpy(dst + kk * kPanel, src + kk * ld + p * kPanel, sizeof(float) * w);
      std::fill(dst + kk * kPanel + w, dst + kk * kPanel + kPanel, 0.f);
    }
    std::fill(dst + k_valid * kPanel, dst + k * kPanel, 0.f);
  }
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void NormaliseRow(const float* x, int64_t n, float* out) {
  // core::AbsMaxStep per lane (NaN sticks), then across the lanes.
  const int64_t n8 = n - n % 8;
  v8f vm = v8f{};
  for (int64_t c = 0; c < n8; c += 8) {
    const v8f v = Load8(x + c), a = (v < 0.f) ? -v : v;
    vm = (a > vm || a != a) ? a : vm;
  }
  float mx = 0.f;
  for (int l = 0; l < 8; ++l) mx = core::AbsMaxStep(mx, vm[l]);
  for (int64_t c = n8; c < n; ++c) mx = core::AbsMaxStep(mx, x[c]);
  float ss = 0.f;
  if (mx > 0.f && mx <= 3.40282347e38f) {
    v8f acc = v8f{};
    for (int64_t c = 0; c < n8; c += 8) {
      const v8f y = Load8(x + c) / mx;
      acc += y * y;
    }
    for (int l = 0; l < 8; ++l) ss += acc[l];
    for (int64_t c = n8; c < n; ++c) ss += (x[c] / mx) * (x[c] / mx);
  }
  const core::NormScale ns = core::RowNormScale(mx, ss);
  for (int64_t c = 0; c < n; ++c) out[c] = x[c] / ns.div * ns.mul;
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void GemmPanels(int64_t m, int64_t npanels, int64_t k,
                                                                            const float* a, int64_t lda,
                                                                            const float* panels, int64_t panel_stride,
                                                                            float* c, int64_t ldc) {
  // Panel-outer order: one K x 16 panel stays in L1/L2 while all rows of A stream past it. (Blocking
  // K as well, so that a panel's block stays in L1 at K = 768, measured no faster here.)
  for (int64_t p = 0; p < npanels; ++p) RowTiles(m, k, a, lda, panels + p * panel_stride, c + p * kPanel, ldc);
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void MaskedSoftmaxRow(float* row, const float* weight,
                                                                                  int64_t n) {
  const float inv = 1.f / MaskedExpRow<false>(row, weight, 1.f, n);
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) float WeightedMaskedExpRow(float* row, const float* weight,
                                                                                       float scale, int64_t n) {
  return MaskedExpRow<true>(row, weight, scale, n);
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) float TripleProductSum(const float* a, const float* b,
                                                                                   const float* e, float* out,
                                                                                   int64_t n) {
  const int64_t n8 = n - n % 8;
  v8f acc = v8f{};
  for (int64_t c = 0; c < n8; c += 8) {
    const v8f s = Load8(a + c) * Load8(b + c) * Load8(e + c);
    Store8(out + c, s);
    acc += s;
  }
  float sum = 0.f;
  for (int l = 0; l < 8; ++l) sum += acc[l];
  for (int64_t c = n8; c < n; ++c) {
    out[c] = a[c] * b[c] * e[c];
    sum += out[c];
  }
  return sum;
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void Axpy(float alpha, const float* x, float* y,
                                                                      int64_t n) {
  for (int64_t c = 0; c < n; ++c) y[c] += alpha * x[c];
}

}  // namespace cpu
}  // namespace finsta
