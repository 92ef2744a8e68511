// The one custom-op descriptor of every finsta op on every execution provider: KernelOp<Def, Ep>
// tells ONNX Runtime the op's name, domain version, input and output counts and memory types from
// the op's Def (common/<op>_params.h), creates its kernel (the attributes read and checked once)
// and runs Compute(Ep, attrs, context), which the provider's folder defines in its namespace.
#pragma once

#include <memory>

#include "op_utils.h"

namespace finsta {

constexpr const char* kDomain = "finsta";  // the only place the domain's name is written in C++
constexpr int kDomainVersion = 1;

// Execution provider tags, one per provider folder: a kernel runs the Compute overload of its
// provider's namespace (found by argument-dependent lookup on the tag).
namespace cpu {
struct Ep {
  static constexpr const char* kName = "CPUExecutionProvider";
  static constexpr bool kDevice = false;
};
}  // namespace cpu
namespace cuda {
struct Ep {
  static constexpr const char* kName = "CUDAExecutionProvider";
  static constexpr bool kDevice = true;
};
}  // namespace cuda

template <typename Def, typename Ep>
struct Kernel {
  typename Def::Attrs attrs;
  // Exceptions (ORT's C++ wrappers throw Ort::Exception) become statuses: none crosses the C ABI.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guard(Def::kName, [&]() -> OrtStatusPtr { return Compute(Ep{}, attrs, context); });
  }
};

template <typename Def, typename Ep>
struct KernelOp : Ort::CustomOpBase<KernelOp<Def, Ep>, Kernel<Def, Ep>, /*WithStatus=*/true> {
  KernelOp() {
    this->start_ver_ = kDomainVersion;
    this->end_ver_ = kDomainVersion;
  }
  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
    return Guard(Def::kName, [&]() -> OrtStatusPtr {
      auto k = std::make_unique<Kernel<Def, Ep>>();
      if (OrtStatusPtr s = Def::ReadAttrs(info, &k->attrs)) return s;
      *kernel = k.release();
      return nullptr;
    });
  }
  const char* GetName() const { return Def::kName; }
  const char* GetExecutionProviderType() const { return Ep::kName; }
  size_t GetInputTypeCount() const { return Def::kInputs; }
  // Any element type is accepted here so that the kernel reports a wrong dtype in its own words.
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED; }
  // A device kernel takes Def::kHostInput (if >= 0) in host memory, to check its values there.
  OrtMemType GetInputMemoryType(size_t i) const {
    return Ep::kDevice && static_cast<int>(i) == Def::kHostInput ? OrtMemTypeCPUInput : OrtMemTypeDefault;
  }
  size_t GetOutputTypeCount() const { return Def::kOutputs; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace finsta
