// The op library's entry points: RegisterCustomOps (called by ORT) and FinstaOpsInfo (called by
// finsta_rt to detect a stale library). Domain "finsta", version 1. The CUDA library registers
// every op for both the CPU and the CUDA execution providers: a CUDA-only registration would make
// ORT reject CPU sessions once the library is loaded.
#include "onnxruntime_cxx_api.h"  // ORT_API_MANUAL_INIT comes from CMake: no libonnxruntime link

#include <mutex>
#include <string>
#include <vector>

#include "cpu/edge_graph_attention.h"
#include "cpu/gaussian_diff_graph_attention.h"
#include "cpu/st_graph_attention.h"
#if FINSTA_WITH_CUDA
#include "cuda/edge_graph_attention_cuda.h"
#include "cuda/gaussian_diff_graph_attention_cuda.h"
#include "cuda/st_graph_attention_cuda.h"
#endif

#ifndef FINSTA_VERSION
#define FINSTA_VERSION "0.0.0"
#endif

namespace {

constexpr const char* kDomain = "finsta";

// Ops and domains must outlive every session that uses them.
finsta::cpu::STGraphAttentionOp g_cpu_st_graph_attention;
finsta::cpu::EdgeGraphAttentionOp g_cpu_edge_graph_attention;
finsta::cpu::GaussianDiffGraphAttentionOp g_cpu_gaussian_diff_graph_attention;
#if FINSTA_WITH_CUDA
finsta::cuda::STGraphAttentionOp g_cuda_st_graph_attention;
finsta::cuda::EdgeGraphAttentionOp g_cuda_edge_graph_attention;
finsta::cuda::GaussianDiffGraphAttentionOp g_cuda_gaussian_diff_graph_attention;
#endif
std::mutex g_mutex;
std::vector<Ort::CustomOpDomain> g_domains;

}  // namespace

extern "C" {

__attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                                 const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (!api) {  // the runtime is older than our headers; GetApi(1) exists in every release
    static const std::string msg = "finsta ops: built against ONNX Runtime API version " +
                                   std::to_string(ORT_API_VERSION) + ", which this onnxruntime lacks; upgrade onnxruntime";
    return api_base->GetApi(1)->CreateStatus(ORT_FAIL, msg.c_str());
  }
  Ort::InitApi(api);
  try {
    Ort::CustomOpDomain domain{kDomain};
    domain.Add(&g_cpu_st_graph_attention);
    domain.Add(&g_cpu_edge_graph_attention);
    domain.Add(&g_cpu_gaussian_diff_graph_attention);
#if FINSTA_WITH_CUDA
    domain.Add(&g_cuda_st_graph_attention);
    domain.Add(&g_cuda_edge_graph_attention);
    domain.Add(&g_cuda_gaussian_diff_graph_attention);
#endif
    Ort::UnownedSessionOptions(options).Add(domain);
    std::lock_guard<std::mutex> lock(g_mutex);
    g_domains.push_back(std::move(domain));
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, (std::string("finsta ops: registration failed: ") + e.what()).c_str());
  }
  return nullptr;
}

// "finsta_ops <version> cuda=<0|1> ops=<names>": finsta_rt compares the version with its own.
// The readers split on whitespace, so the op names are joined by commas.
__attribute__((visibility("default"))) const char* FinstaOpsInfo() {
  return "finsta_ops " FINSTA_VERSION " cuda=" FINSTA_CUDA_FLAG
         " ops=STGraphAttention,EdgeGraphAttention,GaussianDiffGraphAttention";
}

}  // extern "C"
