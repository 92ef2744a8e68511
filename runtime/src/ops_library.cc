#include <dlfcn.h>

#include <cstdlib>
#include <sstream>

#include "finsta_rt/errors.h"
#include "finsta_rt/ops.h"

#ifndef FINSTA_RT_VERSION
#define FINSTA_RT_VERSION "0.0.0"
#endif
#ifndef FINSTA_RT_DEFAULT_OPS_DIR
#define FINSTA_RT_DEFAULT_OPS_DIR ""
#endif

namespace fs = std::filesystem;

namespace finsta_rt {
namespace {

constexpr const char* kEnvDir = "FINSTA_OPS_DIR";
constexpr const char* kBuildHint =
    "Build it from the finsta-rt checkout with `make ops` (needs cmake, a C++17 compiler and, for the CUDA "
    "library, nvcc), set FINSTA_OPS_DIR to a folder that holds it, or pass ModelOptions::ops_library.";

std::string device_kind(const std::string& device) {
  std::string kind = device.substr(0, device.find(':'));
  for (auto& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (kind != "cpu" && kind != "cuda") throw InputError("device must be 'cpu' or 'cuda[:N]', got '" + device + "'");
  return kind;
}

// "finsta_ops <version> cuda=<0|1> ops=<names>", from the library itself.
std::string library_info(const fs::path& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = dlerror();
    throw OpsLibraryError("cannot load the finsta op library " + path.string() + ": " + (err ? err : "dlopen failed") +
                          ". " + kBuildHint);
  }
  using InfoFn = const char* (*)();
  auto fn = reinterpret_cast<InfoFn>(dlsym(handle, "FinstaOpsInfo"));
  std::string info = fn ? fn() : "";
  dlclose(handle);
  if (!fn)
    throw OpsLibraryError("cannot load the finsta op library " + path.string() + ": it has no FinstaOpsInfo. " +
                          kBuildHint);
  return info;
}

}  // namespace

const char* version() { return FINSTA_RT_VERSION; }

fs::path ops_library_dir() {
  const char* env = std::getenv(kEnvDir);
  if (env && *env) return fs::path(env);
  return fs::path(FINSTA_RT_DEFAULT_OPS_DIR);
}

fs::path ops_library_path(const std::string& device, const fs::path& override_path) {
  const std::string kind = device_kind(device);
  const fs::path path = override_path.empty()
                            ? ops_library_dir() / (kind == "cuda" ? "libfinsta_ops_cuda.so" : "libfinsta_ops.so")
                            : override_path;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    std::string extra;
    if (kind == "cuda" && override_path.empty() && fs::is_regular_file(ops_library_dir() / "libfinsta_ops.so", ec))
      extra = " (the CPU library exists: the CUDA one is built only where nvcc is found)";
    throw OpsLibraryError("finsta op library for " + kind + " not found at " + path.string() + extra + ". " +
                          kBuildHint);
  }
  std::istringstream words(library_info(path));
  std::string name, lib_version;
  words >> name >> lib_version;
  if (lib_version != FINSTA_RT_VERSION)
    throw OpsLibraryError("stale finsta op library " + path.string() + ": built for finsta-rt " + lib_version +
                          ", this is finsta-rt " + FINSTA_RT_VERSION + ". " + kBuildHint);
  return path;
}

}  // namespace finsta_rt
