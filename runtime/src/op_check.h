// The attribute names of a graph's finsta nodes, checked before its session is created (docs/ops.md):
// ONNX Runtime's custom-op API cannot show a kernel a misspelt or extra attribute, so the op
// library's FinstaCheckModel reads the model file itself (custom_ops/common/model_check.h), as
// finsta_rt/op_check.py does for Python. Internal; header-only.
#pragma once

#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "finsta_rt/errors.h"

namespace finsta_rt {

// Throws BundleError naming the file, the op, the node and the attribute when a finsta node of
// `model` carries an attribute its op does not read; OpsLibraryError when `library` lacks the check.
inline void check_model_attributes(const std::filesystem::path& model, const std::filesystem::path& library) {
  // ORT has loaded the library already (RegisterCustomOpsLibrary): this only takes a reference.
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = dlerror();
    throw OpsLibraryError("cannot load the finsta op library " + library.string() + ": " +
                          (err ? err : "dlopen failed"));
  }
  using CheckFn = const char* (*)(const void*, size_t);
  auto check = reinterpret_cast<CheckFn>(dlsym(handle, "FinstaCheckModel"));
  if (!check) {
    dlclose(handle);
    throw OpsLibraryError("stale finsta op library " + library.string() +
                          ": it has no FinstaCheckModel (an older build); rebuild it with `make ops`");
  }
  std::error_code ec;
  const auto size = std::filesystem::file_size(model, ec);
  std::vector<char> data(ec ? 0 : size);
  std::ifstream in(model, std::ios::binary);
  if (ec || !in.read(data.data(), static_cast<std::streamsize>(data.size()))) {
    dlclose(handle);
    throw BundleError("cannot read " + model.string() + (ec ? ": " + ec.message() : ""));
  }
  const char* error = check(data.data(), data.size());
  std::string message = error ? model.string() + ": " + error : "";
  dlclose(handle);
  if (!message.empty()) throw BundleError(message);
}

}  // namespace finsta_rt
