// The op library's entry points: RegisterCustomOps (called by ORT), FinstaOpsInfo (called by
// finsta_rt to detect a stale library) and FinstaCheckModel (the loaders' attribute-name check). The ops, the domain
// and its version come from the op table (common/op_table.h); each execution provider folder registers its kernels
// (cpu/register_ops.cc, cuda/register_ops.cc), as ONNX Runtime's custom_op_library sample does. The CUDA library
// registers every op for both the CPU and the CUDA execution providers: a CUDA-only registration
// would make ORT reject CPU sessions once the library is loaded.
#include <mutex>
#include <string>
#include <vector>

#include "common/model_check.h"
#include "common/op_table.h"  // ORT_API_MANUAL_INIT comes from CMake: no libonnxruntime link

#ifndef FINSTA_VERSION
#define FINSTA_VERSION "0.0.0"
#endif

namespace {

// Domains must outlive every session that uses them.
std::mutex g_mutex;
std::vector<Ort::CustomOpDomain> g_domains;

}  // namespace

extern "C" {

__attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                                 const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (!api) {  // the runtime is older than our headers; GetApi(1) exists in every release
    static const std::string msg = "finsta ops: built against ONNX Runtime API version " +
                                   std::to_string(ORT_API_VERSION) +
                                   ", which this onnxruntime lacks; upgrade onnxruntime";
    return api_base->GetApi(1)->CreateStatus(ORT_FAIL, msg.c_str());
  }
  Ort::InitApi(api);
  try {
    Ort::CustomOpDomain domain{finsta::kDomain};
    finsta::cpu::RegisterOps(domain);
#if FINSTA_WITH_CUDA
    finsta::cuda::RegisterOps(domain);
#endif
    Ort::UnownedSessionOptions(options).Add(domain);
    std::lock_guard<std::mutex> lock(g_mutex);
    g_domains.push_back(std::move(domain));
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, (std::string("finsta ops: registration failed: ") + e.what()).c_str());
  }
  return nullptr;
}

// "finsta_ops <version> cuda=<0|1> domain=<name> opset=<n> ops=<names>": finsta_rt compares the
// version and the domain with its own. The readers split on whitespace, so the names are joined by commas.
__attribute__((visibility("default"))) const char* FinstaOpsInfo() {
  static const std::string info = std::string("finsta_ops " FINSTA_VERSION " cuda=" FINSTA_CUDA_FLAG " domain=") +
                                  finsta::kDomain + " opset=" + std::to_string(finsta::kDomainVersion) +
                                  " ops=" + finsta::OpNames();
  return info.c_str();
}

// nullptr when every finsta node of the serialized ModelProto `data` carries only attributes its op
// reads, else why not: "STGraphAttention: node 'n' has unknown attribute 'frame_radiuss' (...)".
// The message stays valid until the calling thread calls again. finsta_rt and the C++ runtime
// call it before they create a session (docs/ops.md); an app that embeds the library can too.
__attribute__((visibility("default"))) const char* FinstaCheckModel(const void* data, size_t size) {
  static thread_local std::string error;
  try {
    error = data || size == 0 ? finsta::model_check::CheckModel(data, size) : "no model data (a null pointer)";
  } catch (const std::exception& e) {  // std::bad_alloc: never across the C ABI
    error = std::string("cannot check the model: ") + e.what();
  }
  return error.empty() ? nullptr : error.c_str();
}

}  // extern "C"
