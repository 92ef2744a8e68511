// Host twin of the STGraphAttention CUDA kernels: runs, thread by thread and in the kernels'
// order, the same arithmetic (common/st_graph_attention_core.h) as the three kernels of
// cuda/st_graph_attention_kernels.cu, so machines without a GPU test it against the reference.
//
//   finsta_cuda_twin IN OUT
// IN:  int64 B, L, D, H, d, P, r; float32 tau, scale; then float32 x, q, k, v (row-major).
// OUT: float32 out [B, H, L, d].
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "common/st_graph_attention_core.h"

using namespace finsta::core;

namespace {

bool ReadAll(FILE* f, void* p, size_t bytes) { return std::fread(p, 1, bytes, f) == bytes; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) { std::fprintf(stderr, "usage: %s IN OUT\n", argv[0]); return 2; }
  FILE* in = std::fopen(argv[1], "rb");
  if (!in) { std::perror(argv[1]); return 2; }
  int64_t hdr[7];
  float tau, scale;
  if (!ReadAll(in, hdr, sizeof hdr) || !ReadAll(in, &tau, 4) || !ReadAll(in, &scale, 4)) {
    std::fprintf(stderr, "%s: short header\n", argv[1]); return 2;
  }
  const int64_t B = hdr[0], L = hdr[1], D = hdr[2], H = hdr[3], d = hdr[4], P = hdr[5], r = hdr[6];
  if (B < 0 || L < 0 || D < 0 || H < 0 || d < 0 || P <= 0 || r < 0 || L % P) {
    std::fprintf(stderr, "%s: bad sizes\n", argv[1]); return 2;
  }
  const int64_t T = L / P;
  const int64_t W = ((2 * r + 1) < T ? (2 * r + 1) : T) * P;
  std::vector<float> x(B * L * D), q(B * H * L * d), k(q.size()), v(q.size()), out(q.size());
  if (!ReadAll(in, x.data(), 4 * x.size()) || !ReadAll(in, q.data(), 4 * q.size()) ||
      !ReadAll(in, k.data(), 4 * k.size()) || !ReadAll(in, v.data(), 4 * v.size())) {
    std::fprintf(stderr, "%s: short data\n", argv[1]); return 2;
  }
  std::fclose(in);

  // Kernel 1: NormalizeRows.
  std::vector<float> xn(x.size());
  for (int64_t row = 0; row < B * L; ++row) {
    float ss = 0.f;
    for (int64_t c = 0; c < D; ++c) ss += x[row * D + c] * x[row * D + c];
    const float inv = InvNorm(ss);
    for (int64_t c = 0; c < D; ++c) xn[row * D + c] = x[row * D + c] * inv;
  }
  // Kernel 2: EdgeWeights, one "thread" per (b, i, w).
  std::vector<float> edge(B * L * W);
  for (int64_t idx = 0; idx < B * L * W; ++idx) {
    const int64_t w = idx % W, i = (idx / W) % L, b = idx / (W * L);
    int64_t count;
    const int64_t j0 = KeyRange(i, P, T, r, &count);
    float a = 0.f;
    if (w < count) {
      const int64_t j = j0 + w;
      float s = 0.f;
      for (int64_t c = 0; c < D; ++c) s += xn[(b * L + i) * D + c] * xn[(b * L + j) * D + c];
      a = EdgeWeight(s, tau, i == j);
    }
    edge[idx] = a;
  }
  // Kernel 3: Attend, one "warp" per (b, h, i).
  std::vector<float> acc(d);
  for (int64_t row = 0; row < B * H * L; ++row) {
    const int64_t i = row % L, b = row / (H * L), head = row - i;
    int64_t count;
    const int64_t j0 = KeyRange(i, P, T, r, &count);
    OnlineSoftmax sm = OnlineSoftmaxInit();
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t w = 0; w < count; ++w) {
      const float a = edge[(b * L + i) * W + w];
      if (a == 0.f) continue;
      float dot = 0.f;
      for (int64_t c = 0; c < d; ++c) dot += q[row * d + c] * k[(head + j0 + w) * d + c];
      float p;
      const float rescale = OnlineSoftmaxAdd(&sm, scale * dot * a, &p);
      for (int64_t c = 0; c < d; ++c) acc[c] = acc[c] * rescale + p * v[(head + j0 + w) * d + c];
    }
    for (int64_t c = 0; c < d; ++c) out[row * d + c] = acc[c] / sm.l;
  }
  FILE* o = std::fopen(argv[2], "wb");
  if (!o || std::fwrite(out.data(), 4, out.size(), o) != out.size()) { std::perror(argv[2]); return 2; }
  std::fclose(o);
  return 0;
}
