// finsta_rt: load a model bundle and embed videos and texts with ONNX Runtime, from C++.
//
//   #include <finsta_rt/finsta_rt.h>
//   finsta_rt::Model model("bundles/stgt-demo");                  // verifies every sha256
//   auto video = model.embed_videos({finsta_rt::FrameView(rgb, {T, H, W, 3})});
//   auto text = model.embed_text({"a man rides a bicycle"});
//   auto scores = model.score(video.at("video_embedding"), text);  // [texts, videos]
//
// Errors are exceptions derived from finsta_rt::Error (errors.h).
#pragma once

#include "finsta_rt/bundle.h"
#include "finsta_rt/clip_tokenizer.h"
#include "finsta_rt/errors.h"
#include "finsta_rt/model.h"
#include "finsta_rt/ops.h"
#include "finsta_rt/preprocess.h"
#include "finsta_rt/sha256.h"
#include "finsta_rt/tensor.h"
#include "finsta_rt/text_graph.h"
#include "finsta_rt/tokenizer.h"
