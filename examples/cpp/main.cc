// finsta_rank: rank texts by how well they describe a video.
//
//   finsta_rank BUNDLE VIDEO "text 1" "text 2" ... [--device auto|cpu|cuda[:N]]
//
// Decodes VIDEO with FFmpeg (the bundle's T frames, uniformly over the whole video), resizes and
// crops them as the bundle says (finsta_rt::resize_and_crop), embeds them and the texts with the
// bundle's graphs (any family: a Finsta bundle parses each text into a scene graph), scores every
// text against the video with score_parts and prints the texts best first with the parts of the
// score where the scorer has them (Finsta: global, spatial, temporal, holistic), as
// `finsta-rt score` does.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include <finsta_rt/finsta_rt.h>

#include "decode_video.h"

namespace {

int usage() {
  std::cerr << "usage: finsta_rank BUNDLE VIDEO TEXT [TEXT...] [--device auto|cpu|cuda[:N]]\n"
               "Ranks the TEXTs by their score against VIDEO with the model bundle BUNDLE.\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  finsta_rt::ModelOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--device" && i + 1 < argc)
      options.device = argv[++i];
    else if (a == "-h" || a == "--help")
      return usage();
    else
      positional.push_back(a);
  }
  if (positional.size() < 3) return usage();
  const std::string bundle_path = positional[0], video_path = positional[1];
  const std::vector<std::string> texts(positional.begin() + 2, positional.end());
  try {
    const finsta_rt::Model model(bundle_path, options);
    const finsta_rt::Bundle& b = model.bundle();
    std::cout << "bundle: " << b.name() << " (" << b.family() << ", " << b.flavour() << ") on " << model.device()
              << "\n";

    const DecodedFrames v = decode_uniform(video_path, b.preprocess().frames);
    std::cout << "video:  " << video_path << ": " << v.frames << " frames of " << v.width << "x" << v.height << " at";
    for (double t : v.times) std::printf(" %.2f", t);
    std::printf(" s (of %.2f s)\n", v.duration);

    const finsta_rt::FrameView frames(v.rgb, {v.frames, v.height, v.width, 3});
    // every family's scorer reads its inputs from these outputs; Finsta's also returns the parts
    const finsta_rt::TensorMap parts = model.score_parts(model.embed_videos({frames}), model.embed_texts(texts));
    const std::vector<std::string> all = parts.names();
    const std::string total = parts.contains("scores") ? "scores" : all.at(0);
    std::vector<std::string> names;  // the parts: every other output, [texts, 1] each
    for (const auto& n : all)
      if (n != total) names.push_back(n);
    const finsta_rt::Tensor& scores = parts.at(total);

    std::vector<size_t> order(texts.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores.data[a] > scores.data[b]; });
    std::printf("\n%4s  %7s  ", "rank", "score");
    for (const auto& n : names) std::printf("%9s  ", (n.rfind("score_", 0) == 0 ? n.substr(6) : n).c_str());
    std::printf("text\n");
    for (size_t r = 0; r < order.size(); ++r) {
      std::printf("%4zu  %7.4f  ", r + 1, scores.data[order[r]]);
      for (const auto& n : names) std::printf("%9.4f  ", parts.at(n).data[order[r]]);
      std::printf("%s\n", texts[order[r]].c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "finsta_rank: error: " << e.what() << "\n";
    return 1;
  }
}
