// Plain owned tensors (float32, row-major) and named groups of them: what the graphs return.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "finsta_rt/export.h"

namespace finsta_rt {

// A tensor in row-major (C) order with float32 values. A graph's int64 or bool output (a group
// index, a mask) comes with its values converted and `dtype` naming its type; fed back to a graph
// (score_parts), values are converted to the type that graph declares.
struct FINSTA_RT_API Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  std::string dtype = "float32";  // of the graph tensor: float32, int64 or bool

  Tensor() = default;
  Tensor(std::vector<int64_t> shape, std::vector<float> data);  // throws InputError if sizes differ

  int64_t dim(size_t i) const;  // shape[i]; throws InputError when out of range
  size_t rank() const { return shape.size(); }
  size_t size() const { return data.size(); }
  const float* row(int64_t i) const;  // start of the i-th slice along dim 0
  float* row(int64_t i);
  int64_t row_size() const;  // elements per slice along dim 0
};

// "[2, 4, 32]"
FINSTA_RT_API std::string shape_str(const std::vector<int64_t>& shape);
// Number of elements of a shape; throws InputError on a negative dimension or overflow.
FINSTA_RT_API size_t element_count(const std::vector<int64_t>& shape);

// Outputs of one graph in the graph's order, looked up by name.
class FINSTA_RT_API TensorMap {
 public:
  void add(std::string name, Tensor t);
  bool contains(const std::string& name) const;
  // The tensor named `name`; throws Error naming the outputs there are when there is none.
  const Tensor& at(const std::string& name) const;
  Tensor& at(const std::string& name);
  std::vector<std::string> names() const;
  size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::pair<std::string, Tensor>> items_;
};

}  // namespace finsta_rt
