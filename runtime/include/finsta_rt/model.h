// The three graphs of a bundle in ONNX Runtime sessions: embed frames, embed text, score
// (the C++ counterpart of finsta_rt.model.Model). ONNX Runtime stays behind this interface: an
// application needs neither its headers nor its library on the link line.
//
// Thread safety: a Model is immutable after construction. embed_frames, embed_videos, embed_texts,
// embed_text, score_parts and score may be called from any number of threads at once on one Model (ONNX Runtime's
// Session::Run is thread-safe, and the tokenizer holds no mutable state).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "finsta_rt/bundle.h"
#include "finsta_rt/export.h"
#include "finsta_rt/tensor.h"
#include "finsta_rt/tokenizer.h"

namespace finsta_rt {

struct FINSTA_RT_API ModelOptions {
  // "auto" (CUDA when this ONNX Runtime has the CUDA provider and the CUDA op library exists,
  // else CPU), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";
  int intra_op_threads = 0;           // 0: ONNX Runtime's default
  std::filesystem::path ops_library;  // empty: found by ops_library_path() (custom flavour only)
};

// Borrowed uint8 RGB frames, row-major (C order); `size` is the number of bytes at `data`.
struct FINSTA_RT_API FrameView {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::vector<int64_t> shape;

  FrameView() = default;
  FrameView(const uint8_t* data, size_t size, std::vector<int64_t> shape)
      : data(data), size(size), shape(std::move(shape)) {}
  FrameView(const std::vector<uint8_t>& bytes, std::vector<int64_t> shape)
      : data(bytes.data()), size(bytes.size()), shape(std::move(shape)) {}
};

class FINSTA_RT_API Model {
 public:
  // Loads and verifies the bundle (Bundle::load), then creates its three sessions.
  explicit Model(const std::filesystem::path& bundle_dir, const ModelOptions& options = {});
  explicit Model(Bundle bundle, const ModelOptions& options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const Bundle& bundle() const;
  // The tokenizer tokenizer.kind names: a WordPieceTokenizer or a ClipBpeTokenizer (clip_tokenizer.h).
  const Tokenizer& tokenizer() const;
  const std::string& device() const;                 // "cpu" or "cuda:N"
  const std::filesystem::path& ops_library() const;  // the registered op library; empty if none

  // What the graphs take besides frames and token ids, read from their declared inputs (never
  // from the family name): a video graph that takes a user video graph (slot_box, slot_mask,
  // slot_adj: family finsta), a text graph that takes parsed scene graphs (node_span, ...: finsta).
  bool takes_user_graph() const;
  bool text_graph_inputs() const;

  // uint8 RGB frames [B, T, S, S, 3], already resized and cropped as bundle().preprocess() says.
  // Returns every output of the video graph by name, in the graph's order: STGT video_embedding
  // [B, Q, E], video_global, video_tokens; Finsta its tracks, frames and graph features too;
  // S-ViLM group_features, group_assignment, group_probs, frame_features, scene_change. Throws
  // InputError for another shape ("frames must be uint8 [B, T, 224, 224, 3] for bundle NAME, got
  // [..]"), an empty batch, a frame count other than a fixed T, or a buffer smaller than the shape.
  TensorMap embed_frames(const FrameView& frames) const;
  // The same with a user video graph for a bundle that takes one (takes_user_graph()): slot_box
  // float32 [B, T, K, 4], slot_mask bool [B, T, K], slot_adj bool [B, T, K, K] (bool as 0/1 values;
  // finsta_rt.user_graph's tensors, stacked). nullptr: no user graph (all masks false, each slot
  // adjacent to itself), as Python's user_graph=None. Throws InputError naming the missing or
  // misshapen tensor, or when the bundle takes no user video graph.
  TensorMap embed_frames(const FrameView& frames, const TensorMap* user_graph) const;

  // Videos of uint8 RGB frames [T, H, W, 3] each, any H and W (all with the same T): each frame
  // is resized and cropped to S x S with resize_and_crop (the C++ port of the Python
  // preprocessing), and the videos run batch_size at a time. Outputs have N = videos.size() rows.
  TensorMap embed_videos(const std::vector<FrameView>& videos, size_t batch_size = 8) const;

  // Every output of the text graph by name (text_embedding [N, E]; Finsta text_objects,
  // text_predicates, ...; S-ViLM noun_embedding), batch_size texts at a time, each batch padded to
  // its longest text. For a text graph that takes scene graphs the texts are parsed with the rule
  // parser (text_graph.h) as the Python runtime does; a bundle whose model.finsta.parser is not
  // "rules" is refused with a BundleError. Throws InputError naming the text for an empty list, a
  // text with no tokens (STGT, S-ViLM) or no scene graph (an empty text: Finsta), invalid UTF-8.
  TensorMap embed_texts(const std::vector<std::string>& texts, size_t batch_size = 256) const;
  // embed_texts(texts).at("text_embedding"): normalised text embeddings [N, E].
  Tensor embed_text(const std::vector<std::string>& texts, size_t batch_size = 256) const;

  // Every scorer output [texts, videos] by name from outputs of embed_frames / embed_videos and
  // embed_texts (each scorer input named video_* is read from `video`, any other from `text`), as
  // finsta_rt.model.Model.score_parts: Finsta scores and its parts score_global, score_spatial,
  // score_temporal, score_holistic. Throws InputError naming a missing or misshapen input.
  TensorMap score_parts(const TensorMap& video, const TensorMap& text) const;

  // Similarity [Nt, Nv] of video embeddings [Nv, Q, E] and text embeddings [Nt, E], for a scorer
  // with one video and one text input (STGT, S-ViLM); other scorers: score_parts.
  Tensor score(const Tensor& video_embedding, const Tensor& text_embedding) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "cpu" or "cuda:N" for an option value; throws InputError for an unknown device and
// RuntimeError when CUDA is asked for but this ONNX Runtime has no CUDA execution provider.
FINSTA_RT_API std::string resolve_device(const std::string& device = "auto");

// The execution providers of the ONNX Runtime library this program uses.
FINSTA_RT_API std::vector<std::string> available_providers();

}  // namespace finsta_rt
