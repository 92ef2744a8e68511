#include "session.h"

#include <mutex>

#include "finsta_rt/errors.h"
#include "op_check.h"

namespace finsta_rt {
namespace {

// CUDA execution provider on device N, CPU as the fallback for what it does not run.
void append_cuda(Ort::SessionOptions& so, const std::string& device) {
  const std::string id = device.substr(device.find(':') + 1);
  const OrtApi& api = Ort::GetApi();
  OrtCUDAProviderOptionsV2* cuda = nullptr;
  Ort::ThrowOnError(api.CreateCUDAProviderOptions(&cuda));
  std::unique_ptr<OrtCUDAProviderOptionsV2, decltype(api.ReleaseCUDAProviderOptions)> guard(
      cuda, api.ReleaseCUDAProviderOptions);
  const char* keys[] = {"device_id"};
  const char* values[] = {id.c_str()};
  Ort::ThrowOnError(api.UpdateCUDAProviderOptions(cuda, keys, values, 1));
  so.AppendExecutionProvider_CUDA_V2(*cuda);
}

Tensor to_tensor(Ort::Value& value, const std::string& name, const std::string& file) {
  if (!value.IsTensor()) throw RuntimeError(file + ": output " + name + " is not a tensor");
  auto info = value.GetTensorTypeAndShapeInfo();
  Tensor t;
  t.shape = info.GetShape();
  const size_t n = info.GetElementCount();
  auto take = [&](auto* p, const char* dtype) {
    t.data.assign(p, p + n);
    t.dtype = dtype;
  };
  switch (info.GetElementType()) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      take(value.GetTensorData<float>(), "float32");
      break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
      take(value.GetTensorData<int64_t>(), "int64");
      break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      take(value.GetTensorData<bool>(), "bool");
      break;
    default:
      throw RuntimeError(file + ": output " + name + " is not float32, int64 or bool (ONNX element type " +
                         std::to_string(static_cast<int>(info.GetElementType())) + ")");
  }
  return t;
}

}  // namespace

std::shared_ptr<Ort::Env> shared_env() {
  static std::mutex mutex;
  static std::weak_ptr<Ort::Env> cached;
  std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<Ort::Env> env = cached.lock();
  if (!env) {
    env = std::make_shared<Ort::Env>(ORT_LOGGING_LEVEL_ERROR, "finsta_rt");
    cached = env;
  }
  return env;
}

GraphSession::GraphSession(const GraphSpec& graph, const SessionConfig& config)
    : env_(shared_env()), file_(graph.path.filename().string()) {
  try {
    Ort::SessionOptions so;
    so.SetIntraOpNumThreads(config.intra_op_threads);
    so.SetLogSeverityLevel(3);
    if (!config.ops_library.empty()) {
      so.RegisterCustomOpsLibrary(config.ops_library.c_str());
      check_model_attributes(graph.path, config.ops_library);  // what ORT cannot show a kernel
    }
    if (config.device.rfind("cuda", 0) == 0) append_cuda(so, config.device);
    session_ = std::make_unique<Ort::Session>(*env_, graph.path.c_str(), so);
    Ort::AllocatorWithDefaultOptions alloc;
    for (size_t i = 0; i < session_->GetInputCount(); ++i) {
      inputs_.emplace_back(session_->GetInputNameAllocated(i, alloc).get());
      input_types_.push_back(session_->GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType());
    }
    for (size_t i = 0; i < session_->GetOutputCount(); ++i)
      outputs_.emplace_back(session_->GetOutputNameAllocated(i, alloc).get());
  } catch (const Ort::Exception& e) {
    throw BundleError("cannot load " + graph.path.string() + " in ONNX Runtime: " + e.what());
  }
}

bool GraphSession::has_input(const std::string& name) const {
  for (const auto& n : inputs_)
    if (n == name) return true;
  return false;
}

ONNXTensorElementDataType GraphSession::input_type(const std::string& name) const {
  for (size_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i] == name) return input_types_[i];
  throw BundleError(file_ + " has no input named " + name);
}

std::vector<Tensor> GraphSession::run(const std::vector<std::string>& names, std::vector<Ort::Value>& inputs,
                                      const std::vector<std::string>& wanted) const {
  const std::vector<std::string>& outs = wanted.empty() ? outputs_ : wanted;
  std::vector<const char*> in_names, out_names;
  for (const auto& n : names) in_names.push_back(n.c_str());
  for (const auto& n : outs) out_names.push_back(n.c_str());
  std::vector<Ort::Value> values;
  try {
    values = session_->Run(Ort::RunOptions{nullptr}, in_names.data(), inputs.data(), inputs.size(), out_names.data(),
                           out_names.size());
  } catch (const Ort::Exception& e) {
    throw RuntimeError(file_ + " failed in ONNX Runtime: " + e.what());
  }
  std::vector<Tensor> result;
  for (size_t i = 0; i < values.size(); ++i) result.push_back(to_tensor(values[i], outs[i], file_));
  return result;
}

}  // namespace finsta_rt
