// Host twin of the finsta CUDA kernels: runs, thread by thread and in the kernels' order, the same
// arithmetic (common/*_core.h) as the kernels of cuda/*_kernels.cu and cuda/graph_checks.cu, so
// machines without a GPU test it against the reference.
//
//   finsta_cuda_twin [STGraphAttention] IN OUT
// IN:  int64 B, L, D, H, d, P, r; float32 tau, scale; then float32 x, q, k, v (row-major).
// OUT: float32 out [B, H, L, d].
//
//   finsta_cuda_twin EdgeGraphAttention IN OUT
// IN:  int64 B, H, N, d; float32 clamp, scale; float32 q, k, v, e; uint8 adj [B, N, N].
// OUT: float32 h [B, H, N, d], then e_out [B, H, N, N, d].
//
//   finsta_cuda_twin GaussianDiffGraphAttention IN OUT
// IN:  int64 B, H, N, d; float32 scale; float32 q, k, v, pos [B, N, 3], sigma [H, 3]; uint8 adj.
// OUT: float32 out [B, H, N, 2d].
//
// A missing self-loop exits with status 3 and names the node, as the device check reports it; sizes
// the host side refuses as too large exit with 4, a clamp it refuses with 5. frame_radius is
// clamped to T - 1 as the host side does.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/edge_graph_attention_core.h"
#include "common/gaussian_diff_graph_attention_core.h"
#include "common/st_graph_attention_core.h"

using namespace finsta::core;

namespace {

bool ReadAll(FILE* f, void* p, size_t bytes) { return std::fread(p, 1, bytes, f) == bytes; }

template <typename T>
bool ReadVec(FILE* f, std::vector<T>* v) {
  return ReadAll(f, v->data(), sizeof(T) * v->size());
}

int WriteOut(const char* path, const std::vector<float>& a, const std::vector<float>& b = {}) {
  FILE* o = std::fopen(path, "wb");
  if (!o || std::fwrite(a.data(), 4, a.size(), o) != a.size() || std::fwrite(b.data(), 4, b.size(), o) != b.size()) {
    std::perror(path);
    return 2;
  }
  std::fclose(o);
  return 0;
}

// cuda/graph_checks.cu: one "thread" per node, the smallest missing node wins (atomicMin).
bool SelfLoopsOk(const std::vector<uint8_t>& adj, int64_t B, int64_t N) {
  unsigned long long flag = kNoMissingNode;
  for (int64_t node = 0; node < B * N; ++node) flag = std::min(flag, MissingSelfLoop(adj.data(), N, node));
  if (flag == kNoMissingNode) return true;
  std::fprintf(stderr, "missing self-loop: node %lld in batch %lld\n", static_cast<long long>(flag % N),
               static_cast<long long>(flag / N));
  return false;
}

// cuda/edge_graph_attention_kernels.cu, EdgeAttend: one "warp" per (b, h, i).
int EdgeGraphAttention(FILE* in, const char* out_path) {
  int64_t hdr[4];
  float clamp, scale;
  if (!ReadAll(in, hdr, sizeof hdr) || !ReadAll(in, &clamp, 4) || !ReadAll(in, &scale, 4)) return 2;
  const int64_t B = hdr[0], H = hdr[1], N = hdr[2], d = hdr[3];
  if (B < 0 || H < 0 || N < 0 || d < 0) return 2;
  if (!ProductFits({B, H, N, N, d})) return 4;           // ValidateEdgeGraphAttention's size check
  if (!(std::isfinite(clamp) && clamp > 0.f)) return 5;  // ReadEdgeGraphAttentionAttrs' check
  std::vector<float> q(B * H * N * d), k(q.size()), v(q.size()), e(q.size() * N), h(q.size()), e_out(e.size());
  std::vector<uint8_t> adj(B * N * N);
  if (!ReadVec(in, &q) || !ReadVec(in, &k) || !ReadVec(in, &v) || !ReadVec(in, &e) || !ReadVec(in, &adj)) return 2;
  if (!SelfLoopsOk(adj, B, N)) return 3;
  std::vector<float> qs(d), acc(d);
  for (int64_t row = 0; row < B * H * N; ++row) {
    const int64_t i = row % N, b = row / (H * N), head = row - i;
    for (int64_t c = 0; c < d; ++c) {
      qs[c] = q[row * d + c] * scale;
      acc[c] = 0.f;
    }
    OnlineSoftmax sm = OnlineSoftmaxInit();
    for (int64_t j = 0; j < N; ++j) {
      float sum = 0.f;
      for (int64_t c = 0; c < d; ++c) {
        const float s = qs[c] * k[(head + j) * d + c] * e[(row * N + j) * d + c];
        e_out[(row * N + j) * d + c] = s;
        sum += s;
      }
      if (!HasEdge(adj.data(), N, b, i, j)) continue;
      float p;
      const float rescale = OnlineSoftmaxAdd(&sm, EdgeAttentionLogit(sum, clamp), &p);
      for (int64_t c = 0; c < d; ++c) acc[c] = acc[c] * rescale + p * v[(head + j) * d + c];
    }
    const EdgeAttentionScale norm = EdgeAttentionNorm(sm.l, sm.m);
    for (int64_t c = 0; c < d; ++c) h[row * d + c] = acc[c] * norm.a * norm.b;
  }
  return WriteOut(out_path, h, e_out);
}

// cuda/gaussian_diff_graph_attention_kernels.cu, GaussianAttend: one "warp" per (b, h, i).
int GaussianDiffGraphAttention(FILE* in, const char* out_path) {
  int64_t hdr[4];
  float scale;
  if (!ReadAll(in, hdr, sizeof hdr) || !ReadAll(in, &scale, 4)) return 2;
  const int64_t B = hdr[0], H = hdr[1], N = hdr[2], d = hdr[3];
  if (B < 0 || H < 0 || N < 0 || d < 0) return 2;
  if (!ProductFits({B, H, N, N}) || !ProductFits({B, H, N, 2, d})) return 4;  // as the host side checks
  std::vector<float> q(B * H * N * d), k(q.size()), v(q.size()), pos(B * N * 3), sigma(H * 3), out(2 * q.size());
  std::vector<uint8_t> adj(B * N * N);
  if (!ReadVec(in, &q) || !ReadVec(in, &k) || !ReadVec(in, &v) || !ReadVec(in, &pos) || !ReadVec(in, &sigma) ||
      !ReadVec(in, &adj))
    return 2;
  if (!SelfLoopsOk(adj, B, N)) return 3;
  std::vector<float> inv_sigma(sigma.size()), acc(d);
  for (size_t c = 0; c < sigma.size(); ++c) inv_sigma[c] = InvSigma(sigma[c]);  // the host side's ReadSigma
  for (int64_t row = 0; row < B * H * N; ++row) {
    const int64_t i = row % N, h = (row / N) % H, b = row / (H * N), head = row - i;
    std::fill(acc.begin(), acc.end(), 0.f);
    OnlineSoftmax sm = OnlineSoftmaxInit();
    for (int64_t j = 0; j < N; ++j) {
      if (!HasEdge(adj.data(), N, b, i, j)) continue;
      float dot = 0.f;
      for (int64_t c = 0; c < d; ++c) dot += q[row * d + c] * k[(head + j) * d + c];
      const float logit = scale * dot + LogGaussian(&pos[(b * N + i) * 3], &pos[(b * N + j) * 3], &inv_sigma[h * 3]);
      float p;
      const float rescale = OnlineSoftmaxAdd(&sm, logit, &p);
      for (int64_t c = 0; c < d; ++c) acc[c] = acc[c] * rescale + p * v[(head + j) * d + c];
    }
    for (int64_t c = 0; c < d; ++c) {
      const float ctx = acc[c] / sm.l;
      out[row * 2 * d + c] = ctx;
      out[row * 2 * d + d + c] = ctx - v[row * d + c];
    }
  }
  return WriteOut(out_path, out);
}

// cuda/st_graph_attention_kernels.cu: NormalizeRows, EdgeWeights, Attend.
int STGraphAttention(FILE* in, const char* in_path, const char* out_path) {
  int64_t hdr[7];
  float tau, scale;
  if (!ReadAll(in, hdr, sizeof hdr) || !ReadAll(in, &tau, 4) || !ReadAll(in, &scale, 4)) {
    std::fprintf(stderr, "%s: short header\n", in_path);
    return 2;
  }
  const int64_t B = hdr[0], L = hdr[1], D = hdr[2], H = hdr[3], d = hdr[4], P = hdr[5], r_attr = hdr[6];
  if (B < 0 || L < 0 || D < 0 || H < 0 || d < 0 || P <= 0 || r_attr < 0 || L % P) {
    std::fprintf(stderr, "%s: bad sizes\n", in_path);
    return 2;
  }
  // The host side's checks (ValidateSTGraphAttention): the radius clamped, every size product bounded.
  const int64_t T = L / P, r = ClampRadius(r_attr, T);
  const int64_t W = ((2 * r + 1) < T ? (2 * r + 1) : T) * P;
  if (!ProductFits({B, L, D}) || !ProductFits({B, H, L, d}) || !ProductFits({B, L, W})) {
    std::fprintf(stderr, "%s: tensor too large\n", in_path);
    return 4;
  }
  std::vector<float> x(B * L * D), q(B * H * L * d), k(q.size()), v(q.size()), out(q.size());
  if (!ReadAll(in, x.data(), 4 * x.size()) || !ReadAll(in, q.data(), 4 * q.size()) ||
      !ReadAll(in, k.data(), 4 * k.size()) || !ReadAll(in, v.data(), 4 * v.size())) {
    std::fprintf(stderr, "%s: short data\n", in_path);
    return 2;
  }

  // Kernel 1: NormalizeRows (the max |x_c|, then the scaled sum of squares).
  std::vector<float> xn(x.size());
  for (int64_t row = 0; row < B * L; ++row) {
    float mx = 0.f, ss = 0.f;
    for (int64_t c = 0; c < D; ++c) mx = AbsMaxStep(mx, x[row * D + c]);
    if (mx > 0.f && mx <= 3.40282347e38f)
      for (int64_t c = 0; c < D; ++c) ss += (x[row * D + c] / mx) * (x[row * D + c] / mx);
    const NormScale ns = RowNormScale(mx, ss);
    for (int64_t c = 0; c < D; ++c) xn[row * D + c] = x[row * D + c] / ns.div * ns.mul;
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
  return WriteOut(out_path, out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: %s [OP] IN OUT\n", argv[0]);
    return 2;
  }
  const char* op = argc == 4 ? argv[1] : "STGraphAttention";
  const char *in_path = argv[argc - 2], *out_path = argv[argc - 1];
  FILE* in = std::fopen(in_path, "rb");
  if (!in) {
    std::perror(in_path);
    return 2;
  }
  int rc;
  if (!std::strcmp(op, "STGraphAttention")) {
    rc = STGraphAttention(in, in_path, out_path);
  } else if (!std::strcmp(op, "EdgeGraphAttention")) {
    rc = EdgeGraphAttention(in, out_path);
  } else if (!std::strcmp(op, "GaussianDiffGraphAttention")) {
    rc = GaussianDiffGraphAttention(in, out_path);
  } else {
    std::fprintf(stderr, "unknown op %s\n", op);
    rc = 2;
  }
  std::fclose(in);
  if (rc == 2) std::fprintf(stderr, "%s: %s failed (bad sizes, short input or output error)\n", in_path, op);
  return rc;
}
