// Locating and checking the finsta custom-op library (libfinsta_ops.so for the CPU,
// libfinsta_ops_cuda.so for CPU + CUDA), as finsta_rt/ops.py does. Looked up in the folder named
// by the FINSTA_OPS_DIR environment variable, else in the folder configured at build time
// (by default the checkout's finsta_rt/_lib, where `make ops` installs it).
#pragma once

#include <filesystem>
#include <string>

#include "finsta_rt/export.h"

namespace finsta_rt {

// The folder searched for the op libraries.
FINSTA_RT_API std::filesystem::path ops_library_dir();

// Path of the op library for `device` ("cpu" or "cuda[:N]"), or `override` when it is not empty.
// Throws OpsLibraryError, saying how to build it, when the file is missing, cannot be loaded, or
// was built for another finsta-rt version.
FINSTA_RT_API std::filesystem::path ops_library_path(const std::string& device = "cpu",
                                                     const std::filesystem::path& override_path = {});

// The finsta-rt version this library was built as (the Python package's version).
FINSTA_RT_API const char* version();

}  // namespace finsta_rt
