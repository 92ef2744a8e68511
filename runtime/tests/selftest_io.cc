#include "selftest_io.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "finsta_rt/errors.h"

namespace selftest {

std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path.string());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<std::string> read_texts(const std::filesystem::path& path) {
  const std::vector<uint8_t> raw = read_bytes(path);
  std::vector<std::string> texts;
  size_t pos = 0;
  while (pos < raw.size()) {
    if (pos + 4 > raw.size()) throw std::runtime_error(path.string() + ": truncated length");
    const uint32_t n = raw[pos] | (raw[pos + 1] << 8) | (raw[pos + 2] << 16) | (uint32_t(raw[pos + 3]) << 24);
    pos += 4;
    if (pos + n > raw.size()) throw std::runtime_error(path.string() + ": truncated text");
    texts.emplace_back(reinterpret_cast<const char*>(raw.data() + pos), n);
    pos += n;
  }
  return texts;
}

std::vector<int64_t> parse_shape(const std::string& s) {
  std::vector<int64_t> shape;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) shape.push_back(std::stoll(item));
  return shape;
}

finsta_rt::Tensor read_tensor(const std::filesystem::path& dir, const std::string& name) {
  const std::vector<uint8_t> raw = read_bytes(dir / (name + ".bin"));
  std::ifstream shape_file(dir / (name + ".shape"));
  std::vector<int64_t> shape;
  for (int64_t d; shape_file >> d;) shape.push_back(d);
  std::vector<float> data(raw.size() / sizeof(float));
  std::memcpy(data.data(), raw.data(), data.size() * sizeof(float));
  return finsta_rt::Tensor(std::move(shape), std::move(data));
}

void write_tensor(const std::filesystem::path& dir, const std::string& name, const finsta_rt::Tensor& t) {
  std::ofstream bin(dir / (name + ".bin"), std::ios::binary);
  bin.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  std::ofstream shape(dir / (name + ".shape"));
  for (size_t i = 0; i < t.shape.size(); ++i) shape << (i ? " " : "") << t.shape[i];
  shape << "\n";
  if (!bin || !shape) throw std::runtime_error("cannot write " + (dir / name).string());
}

std::string describe_current_exception() {
  try {
    throw;
  } catch (const finsta_rt::BundleError& e) {
    return std::string("BundleError\t") + e.what();
  } catch (const finsta_rt::TokenizerError& e) {
    return std::string("TokenizerError\t") + e.what();
  } catch (const finsta_rt::OpsLibraryError& e) {
    return std::string("OpsLibraryError\t") + e.what();
  } catch (const finsta_rt::InputError& e) {
    return std::string("InputError\t") + e.what();
  } catch (const finsta_rt::RuntimeError& e) {
    return std::string("RuntimeError\t") + e.what();
  } catch (const finsta_rt::Error& e) {
    return std::string("Error\t") + e.what();
  } catch (const std::exception& e) {
    return std::string("std::exception\t") + e.what();
  } catch (...) {
    return "unknown\t(not a std::exception)";
  }
}

}  // namespace selftest
