#include "finsta_rt/tensor.h"

#include <limits>

#include "finsta_rt/errors.h"

namespace finsta_rt {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

size_t element_count(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw InputError("shape " + shape_str(shape) + " has a negative dimension");
    if (d != 0 && n > std::numeric_limits<size_t>::max() / static_cast<size_t>(d))
      throw InputError("shape " + shape_str(shape) + " has too many elements");
    n *= static_cast<size_t>(d);
  }
  return n;
}

Tensor::Tensor(std::vector<int64_t> s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {
  if (element_count(shape) != data.size())
    throw InputError("tensor of shape " + shape_str(shape) + " needs " + std::to_string(element_count(shape)) +
                     " values, got " + std::to_string(data.size()));
}

int64_t Tensor::dim(size_t i) const {
  if (i >= shape.size())
    throw InputError("dimension " + std::to_string(i) + " asked of a tensor of shape " + shape_str(shape));
  return shape[i];
}

int64_t Tensor::row_size() const {
  if (shape.empty()) return 1;
  return static_cast<int64_t>(element_count(std::vector<int64_t>(shape.begin() + 1, shape.end())));
}

const float* Tensor::row(int64_t i) const {
  if (shape.empty() || i < 0 || i >= shape[0])
    throw InputError("row " + std::to_string(i) + " asked of a tensor of shape " + shape_str(shape));
  return data.data() + i * row_size();
}

float* Tensor::row(int64_t i) { return const_cast<float*>(static_cast<const Tensor&>(*this).row(i)); }

void TensorMap::add(std::string name, Tensor t) { items_.emplace_back(std::move(name), std::move(t)); }

bool TensorMap::contains(const std::string& name) const {
  for (const auto& it : items_)
    if (it.first == name) return true;
  return false;
}

const Tensor& TensorMap::at(const std::string& name) const {
  for (const auto& it : items_)
    if (it.first == name) return it.second;
  std::string have;
  for (const auto& it : items_) have += (have.empty() ? "" : ", ") + it.first;
  throw Error("no output named '" + name + "'; the outputs are: " + (have.empty() ? "(none)" : have));
}

Tensor& TensorMap::at(const std::string& name) {
  return const_cast<Tensor&>(static_cast<const TensorMap&>(*this).at(name));
}

std::vector<std::string> TensorMap::names() const {
  std::vector<std::string> out;
  for (const auto& it : items_) out.push_back(it.first);
  return out;
}

}  // namespace finsta_rt
