// What a bundle says about turning decoded frames into the video tower's input, and the resize
// that does it: a C++ port of finsta_rt/preprocess.py (separable antialiased triangle filter on
// half-pixel centres, widened by the scale when shrinking; shorter side to S, then centre crop).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "finsta_rt/export.h"

namespace finsta_rt {

struct FINSTA_RT_API PreprocessSpec {
  int size = 224;                                        // S: the tower takes [B, T, S, S, 3]
  std::string resize = "shorter_side_then_center_crop";  // or "stretch"
  std::string interpolation = "bilinear";
  std::array<double, 3> mean{127.0, 127.0, 127.0};  // applied inside the graph (0..255 scale)
  std::array<double, 3> std{128.0, 128.0, 128.0};
  std::string colour = "RGB";
  std::string dtype = "uint8";
  int frames = 8;  // T the bundle was exported for
  std::string sampling = "uniform";

  // Throws InputError with the same wording as Preprocess.__post_init__ when a field is invalid.
  void validate() const;
};

// Antialiased resize of one uint8 image [h, w, channels] to [out_h, out_w, channels].
// Matches finsta_rt.preprocess.resize up to float32 rounding: a value can differ by 1 where the
// exact result lies on a .5 boundary (the Python side sums with BLAS in another order).
FINSTA_RT_API std::vector<uint8_t> resize(const uint8_t* image, int h, int w, int channels, int out_h, int out_w);

// Shorter side to `size` keeping the aspect (or "stretch" to size x size), then a centre crop:
// finsta_rt.preprocess.resize_and_crop for one image. Returns [size, size, channels].
FINSTA_RT_API std::vector<uint8_t> resize_and_crop(const uint8_t* image, int h, int w, int channels, int size,
                                                   const std::string& mode = "shorter_side_then_center_crop");

}  // namespace finsta_rt
