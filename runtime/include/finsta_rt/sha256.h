// SHA-256 (FIPS 180-4), as bundle loading uses it to verify files. Self-contained: no OpenSSL.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "finsta_rt/export.h"

namespace finsta_rt {

class FINSTA_RT_API Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex_digest();  // finishes the hash: lowercase hex, 64 characters

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_;
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

FINSTA_RT_API std::string sha256_hex(const void* data, size_t size);
// Hash of a file's bytes; throws BundleError naming the file when it cannot be read.
FINSTA_RT_API std::string sha256_file(const std::filesystem::path& path);

}  // namespace finsta_rt
