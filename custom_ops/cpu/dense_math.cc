#include "dense_math.h"

#include <cmath>
#include <cstring>

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

}  // namespace

void PackTransposed(const float* src, int64_t n, int64_t k, int64_t ld, float* panels) {
  const int64_t np = NumPanels(n);
  std::memset(panels, 0, sizeof(float) * np * kPanel * k);
  for (int64_t j = 0; j < n; ++j) {
    float* dst = panels + (j / kPanel) * kPanel * k + (j % kPanel);
    const float* s = src + j * ld;
    for (int64_t kk = 0; kk < k; ++kk) dst[kk * kPanel] = s[kk];
  }
}

void PackRows(const float* src, int64_t k_valid, int64_t k, int64_t n, int64_t ld, float* panels) {
  const int64_t np = NumPanels(n);
  std::memset(panels, 0, sizeof(float) * np * kPanel * k);
  for (int64_t kk = 0; kk < k_valid; ++kk) {
    const float* s = src + kk * ld;
    for (int64_t j = 0; j < n; ++j) panels[(j / kPanel) * kPanel * k + kk * kPanel + (j % kPanel)] = s[j];
  }
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void GemmPacked(int64_t m, int64_t npanels, int64_t k,
                                                                            const float* a, int64_t lda,
                                                                            const float* panels, float* c,
                                                                            int64_t ldc) {
  // Panel-outer order: one K x 16 panel stays in L1/L2 while all rows of A stream past it.
  for (int64_t p = 0; p < npanels; ++p) {
    const float* panel = panels + p * kPanel * k;
    float* cp = c + p * kPanel;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
      v8f c0[4], c1[4];
      for (int r = 0; r < 4; ++r) {
        c0[r] = v8f{};
        c1[r] = v8f{};
      }
      const float* ai = a + i * lda;
      for (int64_t kk = 0; kk < k; ++kk) {
        const v8f b0 = Load8(panel + kk * kPanel);
        const v8f b1 = Load8(panel + kk * kPanel + 8);
        for (int r = 0; r < 4; ++r) {
          const float av = ai[r * lda + kk];
          c0[r] += av * b0;
          c1[r] += av * b1;
        }
      }
      for (int r = 0; r < 4; ++r) {
        Store8(cp + (i + r) * ldc, c0[r]);
        Store8(cp + (i + r) * ldc + 8, c1[r]);
      }
    }
    for (; i < m; ++i) {
      v8f c0 = v8f{}, c1 = v8f{};
      const float* ai = a + i * lda;
      for (int64_t kk = 0; kk < k; ++kk) {
        c0 += ai[kk] * Load8(panel + kk * kPanel);
        c1 += ai[kk] * Load8(panel + kk * kPanel + 8);
      }
      Store8(cp + i * ldc, c0);
      Store8(cp + i * ldc + 8, c1);
    }
  }
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void MaskedSoftmaxRow(float* row, const float* weight,
                                                                                  int64_t n) {
  const v8f neg_inf = v8f{} - INFINITY, zero = v8f{};
  const int64_t n8 = n - n % 8;
  v8f vmx = neg_inf;
  for (int64_t j = 0; j < n8; j += 8) {
    const v8f e = Load8(row + j), w = Load8(weight + j);
    const v8f cand = (w != 0.f) ? e : neg_inf;
    vmx = (vmx > cand) ? vmx : cand;
  }
  float mx = -INFINITY;
  for (int l = 0; l < 8; ++l) mx = vmx[l] > mx ? vmx[l] : mx;
  for (int64_t j = n8; j < n; ++j)
    if (weight[j] != 0.f && row[j] > mx) mx = row[j];
  // Masked entries are computed too (branch-free) and then zeroed.
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
  const float inv = 1.f / sum;
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
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
