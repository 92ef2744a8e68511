// File formats shared by finsta_rt_selftest and tests/test_cpp_runtime.py:
//   texts:   for each text, its UTF-8 byte length (uint32, little endian) then the bytes;
//   tensors: NAME.bin (raw float32, little endian, row-major) and NAME.shape ("2 4 32").
#pragma once

#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "finsta_rt/tensor.h"

namespace selftest {

std::vector<uint8_t> read_bytes(const std::filesystem::path& path);
std::vector<std::string> read_texts(const std::filesystem::path& path);
std::vector<int64_t> parse_shape(const std::string& s);  // "2,4,64,64,3"
// NAME.bin / NAME.shape in `dir` (float32), as write_tensor writes them.
finsta_rt::Tensor read_tensor(const std::filesystem::path& dir, const std::string& name);
void write_tensor(const std::filesystem::path& dir, const std::string& name, const finsta_rt::Tensor& t);
// "BundleError<TAB>message" for the exception being handled (call inside a catch block).
std::string describe_current_exception();

}  // namespace selftest
