// Decoding a video with FFmpeg's libraries: N frames at the centres of N equal time bins
// ("uniform:N", as finsta_rt.video samples), each the decoded frame nearest in time, as RGB24.
// Only the packets from the keyframe before each chosen frame up to it are decoded (the plan of
// finsta_rt.video_plan), so both pick the same frames; packets nobody chose go with skip_frame = NONREF
// (an unchosen non-reference frame is not decoded: no other frame's pixels change).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct DecodedFrames {
  int frames = 0, height = 0, width = 0;
  std::vector<uint8_t> rgb;   // [frames, height, width, 3]
  std::vector<double> times;  // seconds, of each kept frame
  double duration = 0;        // seconds
};

// Throws std::runtime_error naming the file and FFmpeg's reason when it cannot be decoded.
DecodedFrames decode_uniform(const std::string& path, int frames);
