// One graph of a bundle in an ONNX Runtime session: creation (op library, provider, threads),
// its input and output names, and a Run that returns finsta_rt tensors. Internal.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <onnxruntime_cxx_api.h>

#include "finsta_rt/bundle.h"
#include "finsta_rt/tensor.h"

namespace finsta_rt {

struct SessionConfig {
  std::string device = "cpu";  // "cpu" or "cuda:N"
  int intra_op_threads = 0;
  std::filesystem::path ops_library;  // registered when not empty
};

// The process-wide ONNX Runtime environment (created once, thread-safely).
std::shared_ptr<Ort::Env> shared_env();

class GraphSession {
 public:
  GraphSession(const GraphSpec& graph, const SessionConfig& config);

  const std::string& file() const { return file_; }  // for messages: "text.onnx"
  const std::vector<std::string>& input_names() const { return inputs_; }
  const std::vector<std::string>& output_names() const { return outputs_; }
  bool has_input(const std::string& name) const;
  // The element type of input `name` (FLOAT, INT64, BOOL, ...); throws BundleError when there is none.
  ONNXTensorElementDataType input_type(const std::string& name) const;

  // Runs with `inputs` named `names`; returns the outputs named `wanted` (all when empty) as
  // Tensors (float32 values; an int64 or bool output converted, its Tensor::dtype naming it). Safe
  // to call from several threads at once.
  std::vector<Tensor> run(const std::vector<std::string>& names, std::vector<Ort::Value>& inputs,
                          const std::vector<std::string>& wanted = {}) const;

 private:
  std::shared_ptr<Ort::Env> env_;
  std::unique_ptr<Ort::Session> session_;
  std::string file_;
  std::vector<std::string> inputs_, outputs_;
  std::vector<ONNXTensorElementDataType> input_types_;
};

}  // namespace finsta_rt
