// The CPU execution provider's kernels: every op of the table (common/op_table.h). Both libraries
// compile this file, so it also exports the model check of the loaders (common/model_check.h).
#include <string>

#include "../common/model_check.h"
#include "../common/op_table.h"

namespace finsta {
namespace cpu {

void RegisterOps(Ort::CustomOpDomain& domain) { AddOps<Ep>(domain); }

}  // namespace cpu
}  // namespace finsta

// nullptr when every finsta node of the serialized ModelProto `data` carries only attributes its op
// reads, else why not: "STGraphAttention: node 'n' has unknown attribute 'frame_radiuss' (...)".
// The message stays valid until the calling thread calls again. finsta_rt and the C++ runtime
// call it before they create a session (docs/ops.md); an app that embeds the library can too.
extern "C" __attribute__((visibility("default"))) const char* FinstaCheckModel(const void* data, size_t size) {
  static thread_local std::string error;
  try {
    error = data || size == 0 ? finsta::model_check::CheckModel(data, size) : "no model data (a null pointer)";
  } catch (const std::exception& e) {  // std::bad_alloc: never across the C ABI
    error = std::string("cannot check the model: ") + e.what();
  }
  return error.empty() ? nullptr : error.c_str();
}
