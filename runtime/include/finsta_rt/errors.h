// Exceptions thrown by finsta_rt. Every message names the file, tensor or argument at fault and
// the problem, in the same words as the Python runtime where there is a Python counterpart.
#pragma once

#include <stdexcept>
#include <string>

#include "finsta_rt/export.h"

namespace finsta_rt {

// Base of every finsta_rt exception: catch this to catch them all.
class FINSTA_RT_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bundle is missing, malformed, altered (sha256) or unsafe (a path leaves its directory), or
// ONNX Runtime cannot load one of its graphs. Python: finsta_rt.bundle.BundleError.
class FINSTA_RT_API BundleError : public Error {
 public:
  using Error::Error;
};

// A vocabulary file or a tokenizer setting is unusable. Python: finsta_rt.tokenizer.TokenizerError.
class FINSTA_RT_API TokenizerError : public Error {
 public:
  using Error::Error;
};

// The finsta custom-op library is missing, stale or cannot be loaded. Python: OpsLibraryError.
class FINSTA_RT_API OpsLibraryError : public Error {
 public:
  using Error::Error;
};

// An argument is unusable: frames of the wrong shape, an empty or non-UTF-8 text, an empty batch,
// embeddings that do not fit the scorer, an unknown device. Python: ValueError.
class FINSTA_RT_API InputError : public Error {
 public:
  using Error::Error;
};

// ONNX Runtime failed while running a graph, or a requested execution provider is unavailable.
class FINSTA_RT_API RuntimeError : public Error {
 public:
  using Error::Error;
};

}  // namespace finsta_rt
