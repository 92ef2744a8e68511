// Model: validation of inputs, batching, and the three graph sessions (see model.h).
#include "finsta_rt/model.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>
#include <memory>

#include "finsta_rt/clip_tokenizer.h"
#include "finsta_rt/errors.h"
#include "finsta_rt/ops.h"
#include "finsta_rt/preprocess.h"
#include "finsta_rt/text_graph.h"
#include "session.h"

namespace finsta_rt {
namespace {

bool has_cuda_provider() {
  for (const auto& p : available_providers())
    if (p == "CUDAExecutionProvider") return true;
  return false;
}

// Concatenates tensors along dimension 0 (their other dimensions are equal).
Tensor concat_rows(std::vector<Tensor>& parts) {
  if (parts.size() == 1) return std::move(parts[0]);
  Tensor out;
  out.shape = parts[0].shape;
  out.shape[0] = 0;
  for (auto& p : parts) {
    out.shape[0] += p.shape[0];
    out.data.insert(out.data.end(), p.data.begin(), p.data.end());
  }
  return out;
}

// A tensor over caller-owned CPU memory (described by one MemoryInfo, created once).
Ort::Value cpu_tensor(const void* data, size_t bytes, const std::vector<int64_t>& shape,
                      ONNXTensorElementDataType type) {
  static const Ort::MemoryInfo mem = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  return Ort::Value::CreateTensor(mem, const_cast<void*>(data), bytes, shape.data(), shape.size(), type);
}

// Checks `t` against a declared input: same rank, fixed dimensions equal, every dimension > 0.
void check_declared(const Tensor& t, const TensorSpec& spec, const std::string& what) {
  bool ok = t.shape.size() == spec.shape.size();
  for (size_t i = 0; ok && i < t.shape.size(); ++i)
    ok = t.shape[i] > 0 && (!spec.shape[i].fixed() || spec.shape[i].value == t.shape[i]);
  if (!ok) throw InputError(what + " must be " + spec.str() + ", got " + shape_str(t.shape));
  if (element_count(t.shape) != t.data.size())
    throw InputError(what + " has shape " + shape_str(t.shape) + " but holds " + std::to_string(t.data.size()) +
                     " values");
}

const TensorSpec& declared(const GraphSpec& g, const std::string& name) {
  for (const auto& s : g.inputs)
    if (s.name == name) return s;
  throw BundleError("bundle.yaml: graphs." + g.name + ".inputs has no " + name);
}

// Inputs of one Run: names, values and the converted buffers the values point into.
struct Feed {
  std::vector<std::string> names;
  std::vector<Ort::Value> values;
  std::vector<std::vector<int64_t>> i64;
  std::vector<std::vector<uint8_t>> u8;
  std::vector<std::vector<float>> f32;

  void add(const std::string& name, const void* data, size_t bytes, const std::vector<int64_t>& shape,
           ONNXTensorElementDataType type) {
    names.push_back(name);
    values.push_back(cpu_tensor(data, bytes, shape, type));
  }
  void add(const std::string& name, const std::vector<int64_t>& v, const std::vector<int64_t>& shape) {
    add(name, v.data(), v.size() * sizeof(int64_t), shape, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64);
  }
  void add_bool(const std::string& name, const std::vector<uint8_t>& v, const std::vector<int64_t>& shape) {
    add(name, v.data(), v.size(), shape, ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL);
  }
  // `t`'s values as `type` (float32, int64 or bool: nonzero is true, as numpy's astype(bool)).
  void add_as(const std::string& name, const Tensor& t, ONNXTensorElementDataType type, const std::string& what) {
    if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      add(name, t.data.data(), t.data.size() * sizeof(float), t.shape, type);
    } else if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
      i64.emplace_back(t.data.begin(), t.data.end());
      add(name, i64.back(), t.shape);
    } else if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL) {
      u8.emplace_back(t.data.size());
      std::transform(t.data.begin(), t.data.end(), u8.back().begin(), [](float x) { return x != 0.0f; });
      add_bool(name, u8.back(), t.shape);
    } else {
      throw BundleError(what + " is of ONNX element type " + std::to_string(static_cast<int>(type)) +
                        ", which this runtime cannot feed (float32, int64, bool)");
    }
  }
};

TensorMap named(const GraphSession& s, std::vector<Tensor> outs) {
  TensorMap result;
  for (size_t i = 0; i < outs.size(); ++i) result.add(s.output_names()[i], std::move(outs[i]));
  return result;
}

// Concatenates each output of `parts` (runs of consecutive batches) along dimension 0.
TensorMap concat_maps(std::vector<TensorMap>& parts) {
  TensorMap result;
  for (const auto& name : parts[0].names()) {
    std::vector<Tensor> pieces;
    for (auto& p : parts) pieces.push_back(std::move(p.at(name)));
    const std::string dtype = pieces[0].dtype;
    Tensor t = concat_rows(pieces);
    t.dtype = dtype;
    result.add(name, std::move(t));
  }
  return result;
}

// A shape as numpy prints it: "(2, 4, 3)", "(3,)".
std::string tuple_str(const std::vector<int64_t>& shape) {
  const std::string s = shape_str(shape);
  return "(" + s.substr(1, s.size() - 2) + (shape.size() == 1 ? ",)" : ")");
}

std::vector<std::string> sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + ("'" + n + "'");
  return "[" + s + "]";
}

// The inputs a video graph may take (finsta_rt.model.Model.video_inputs) and a text graph that
// takes scene graphs may take (text_graph_feed).
const std::vector<std::string> kVideoInputs = {"frames", "slot_box", "slot_mask", "slot_adj"};
const std::vector<std::string> kTextGraphInputs = {"input_ids", "attention_mask", "node_span", "node_type", "node_mask",
                                                   "adj",       "edge_type",      "pred_order"};

}  // namespace

std::vector<std::string> available_providers() { return Ort::GetAvailableProviders(); }

std::string resolve_device(const std::string& device) {
  std::string d = device;
  for (auto& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (d == "auto") {
    if (has_cuda_provider()) {
      try {
        ops_library_path("cuda");
        return "cuda:0";
      } catch (const OpsLibraryError&) {
        // CUDA is there but its op library is not: the CPU is the safe choice
      }
    }
    return "cpu";
  }
  const std::string kind = d.substr(0, d.find(':'));
  const std::string index = d.find(':') == std::string::npos ? "" : d.substr(d.find(':') + 1);
  if (kind == "cpu" && d == "cpu") return "cpu";
  const bool digits = !index.empty() && index.size() < 6 &&
                      std::all_of(index.begin(), index.end(), [](unsigned char c) { return std::isdigit(c); });
  if (kind == "cuda" && (d == "cuda" || digits)) {
    if (!has_cuda_provider())
      throw RuntimeError("device '" + device + "' asked for, but this ONNX Runtime has no CUDAExecutionProvider " +
                         "(build against onnxruntime-gpu's library: configure with -DORT_ROOT=... or point " +
                         "FINSTA_PYTHON at a Python with onnxruntime-gpu)");
    return "cuda:" + (digits ? std::to_string(std::stoi(index)) : std::string("0"));
  }
  throw InputError("device must be 'auto', 'cpu' or 'cuda[:N]', got '" + device + "'");
}

struct Model::Impl {
  Bundle bundle;
  std::string device;
  std::filesystem::path ops_library;
  std::unique_ptr<Tokenizer> tokenizer;  // WordPieceTokenizer or ClipBpeTokenizer: tokenizer.kind
  GraphSession video, text, scorer;
  bool user_graph = false;   // the video graph takes slot_box, slot_mask, slot_adj (family finsta)
  bool text_graphs = false;  // the text graph takes parsed scene graphs (family finsta)
  int64_t slot_frames = 0, slots = 0, max_nodes = 0;

  // bundle.py tokenizer_from_spec: the tokenizer the bundle's tokenizer section states.
  static std::unique_ptr<Tokenizer> make_tokenizer(const Bundle& b) {
    const TokenizerSpec& spec = b.tokenizer_spec();
    try {
      if (spec.kind == "clip_bpe")
        return std::make_unique<ClipBpeTokenizer>(
            ClipBpeTokenizer::from_files(spec.vocab, spec.merges, spec.max_length));
      if (spec.kind != "wordpiece")  // Bundle::load refuses other kinds
        throw BundleError(b.manifest_path().string() + ": tokenizer kind '" + spec.kind +
                          "' is not one of wordpiece, clip_bpe");
      TokenizerOptions o;
      o.lowercase = spec.lowercase;
      o.max_length = spec.max_length;
      return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_file(spec.vocab, o));
    } catch (const InputError& e) {
      throw BundleError(b.manifest_path().string() + ": bad tokenizer section: " + e.what());
    }
  }

  static SessionConfig config(const Bundle& b, const ModelOptions& o, const std::string& device) {
    SessionConfig c;
    c.device = device;
    c.intra_op_threads = o.intra_op_threads;
    if (b.requires_op_library()) c.ops_library = ops_library_path(device, o.ops_library);
    return c;
  }

  // A fixed dimension `i` of the declared input `name` of `g`.
  int64_t fixed_dim(const GraphSpec& g, const std::string& name, size_t i) const {
    const TensorSpec& spec = declared(g, name);
    if (spec.shape.size() <= i || !spec.shape[i].fixed())
      throw BundleError(bundle.manifest_path().string() + ": graphs." + g.name + ".inputs " + name + " is " +
                        spec.str() + ": dimension " + std::to_string(i) + " must be a fixed size");
    return spec.shape[i].value;
  }

  Impl(Bundle b, const std::string& dev, const SessionConfig& c)
      : bundle(std::move(b)),
        device(dev),
        ops_library(c.ops_library),
        tokenizer(make_tokenizer(bundle)),
        video(bundle.graph("video"), c),
        text(bundle.graph("text"), c),
        scorer(bundle.graph("scorer"), c) {
    auto only = [](const GraphSession& s, const std::vector<std::string>& allowed, const std::string& what) {
      for (const auto& n : s.input_names())
        if (std::find(allowed.begin(), allowed.end(), n) == allowed.end())
          throw BundleError(s.file() + " has inputs " + join(s.input_names()) + ": input '" + n +
                            "' is not one this finsta-rt can feed (" + what + ")");
    };
    auto need = [](const GraphSession& s, const std::vector<std::string>& names) {
      for (const auto& n : names)
        if (!s.has_input(n))
          throw BundleError(s.file() + " has inputs " + join(s.input_names()) + ", expected an input named " + n);
    };
    need(video, {"frames"});
    only(video, kVideoInputs, "frames, and slot_box, slot_mask, slot_adj for a user video graph");
    user_graph = video.has_input("slot_mask");
    if (user_graph) {
      need(video, {"slot_box", "slot_mask", "slot_adj"});
      slot_frames = fixed_dim(bundle.graph("video"), "slot_mask", 1);
      slots = fixed_dim(bundle.graph("video"), "slot_mask", 2);
    }
    need(text, {"input_ids", "attention_mask"});
    text_graphs = text.has_input("node_span");
    if (text_graphs) {
      only(text, kTextGraphInputs, "token ids and mask, and the scene-graph tensors of text_graph_feed");
      max_nodes = fixed_dim(bundle.graph("text"), "node_type", 1);
    } else {
      only(text, {"input_ids", "attention_mask"}, "input_ids, attention_mask");
    }
    for (const auto& n : scorer.input_names()) scorer.input_type(n);  // every input has a type
  }

  // The video graph's inputs besides frames (finsta_rt.model.Model.video_inputs).
  void video_inputs(int64_t B, const TensorMap* user, Feed& feed) const;
  // Runs the text graph on texts[start, end).
  TensorMap run_texts(const std::vector<std::string>& texts, size_t start, size_t end,
                      std::vector<std::vector<int64_t>>& all_ids) const;
};

Model::Model(const std::filesystem::path& bundle_dir, const ModelOptions& options)
    : Model(Bundle::load(bundle_dir), options) {}

Model::Model(Bundle bundle, const ModelOptions& options) {
  const std::string device = resolve_device(options.device);
  const SessionConfig c = Impl::config(bundle, options, device);
  impl_ = std::make_unique<Impl>(std::move(bundle), device, c);
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const Bundle& Model::bundle() const { return impl_->bundle; }
const Tokenizer& Model::tokenizer() const { return *impl_->tokenizer; }
const std::string& Model::device() const { return impl_->device; }
const std::filesystem::path& Model::ops_library() const { return impl_->ops_library; }
bool Model::takes_user_graph() const { return impl_->user_graph; }
bool Model::text_graph_inputs() const { return impl_->text_graphs; }

void Model::Impl::video_inputs(int64_t B, const TensorMap* user, Feed& feed) const {
  if (!user_graph) {
    if (user) throw InputError("bundle " + bundle.name() + " (" + bundle.family() + ") takes no user video graph");
    return;
  }
  const int64_t T = slot_frames, K = slots;
  if (!user) {  // no user graph: empty masks, and every slot adjacent to itself only
    feed.f32.emplace_back(static_cast<size_t>(B * T * K * 4), 0.0f);
    feed.add("slot_box", feed.f32.back().data(), feed.f32.back().size() * sizeof(float), {B, T, K, 4},
             ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    feed.u8.emplace_back(static_cast<size_t>(B * T * K), 0);
    feed.add_bool("slot_mask", feed.u8.back(), {B, T, K});
    feed.u8.emplace_back(static_cast<size_t>(B * T * K * K), 0);
    for (int64_t bt = 0; bt < B * T; ++bt)
      for (int64_t k = 0; k < K; ++k) feed.u8.back()[static_cast<size_t>((bt * K + k) * K + k)] = 1;
    feed.add_bool("slot_adj", feed.u8.back(), {B, T, K, K});
    return;
  }
  const std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"slot_box", {B, T, K, 4}}, {"slot_mask", {B, T, K}}, {"slot_adj", {B, T, K, K}}};
  for (const auto& [name, shape] : want) {
    const Tensor* t = user->contains(name) ? &user->at(name) : nullptr;
    if (!t || t->shape != shape || t->data.size() != element_count(shape)) {
      const std::string got = !t ? "missing" : "shape " + tuple_str(t->shape);
      throw InputError("user video graph: " + name + " must be " + (name == "slot_box" ? "float32 " : "bool ") +
                       shape_str(shape) + " for bundle " + bundle.name() + " (T=" + std::to_string(T) +
                       " frames, K=" + std::to_string(K) + " slots), got " + got);
    }
    feed.add_as(name, *t, video.input_type(name), video.file() + " input " + name);
  }
}

TensorMap Model::embed_frames(const FrameView& frames) const { return embed_frames(frames, nullptr); }

TensorMap Model::embed_frames(const FrameView& frames, const TensorMap* user_graph) const {
  const int S = impl_->bundle.preprocess().size;
  const auto& shape = frames.shape;
  const bool ok =
      shape.size() == 5 && shape[0] >= 0 && shape[1] >= 0 && shape[2] == S && shape[3] == S && shape[4] == 3;
  if (!ok)
    throw InputError("frames must be uint8 [B, T, " + std::to_string(S) + ", " + std::to_string(S) +
                     ", 3] for bundle " + impl_->bundle.name() + ", got " + shape_str(shape));
  if (shape[0] == 0 || shape[1] == 0)
    throw InputError("frames has an empty batch or no frames: shape " + shape_str(shape));
  const TensorSpec& fspec = declared(impl_->bundle.graph("video"), "frames");
  if (fspec.shape.size() > 1 && fspec.shape[1].fixed() && fspec.shape[1].value != shape[1])
    throw InputError("bundle " + impl_->bundle.name() + " takes exactly T=" + std::to_string(fspec.shape[1].value) +
                     " frames per video, got " + std::to_string(shape[1]));
  const size_t n = element_count(shape);
  if (!frames.data) throw InputError("frames of shape " + shape_str(shape) + " have a null data pointer");
  if (frames.size < n)
    throw InputError("frames of shape " + shape_str(shape) + " need " + std::to_string(n) + " bytes, got " +
                     std::to_string(frames.size));
  Feed feed;
  feed.add("frames", frames.data, n, shape, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
  impl_->video_inputs(shape[0], user_graph, feed);
  return named(impl_->video, impl_->video.run(feed.names, feed.values));
}

TensorMap Model::embed_videos(const std::vector<FrameView>& videos, size_t batch_size) const {
  if (videos.empty()) throw InputError("embed_videos needs at least one video");
  if (batch_size == 0) throw InputError("embed_videos: batch_size must be at least 1");
  const PreprocessSpec& pre = impl_->bundle.preprocess();
  const int64_t S = pre.size;
  for (size_t i = 0; i < videos.size(); ++i) {
    const auto& s = videos[i].shape;
    const std::string name = "videos[" + std::to_string(i) + "]";
    if (s.size() != 4 || s[0] <= 0 || s[1] <= 0 || s[2] <= 0 || s[3] != 3 || s[1] > (1 << 16) || s[2] > (1 << 16))
      throw InputError(name + " must be uint8 RGB frames [T, H, W, 3] with T, H, W > 0, got " + shape_str(s));
    if (s[0] != videos[0].shape[0])
      throw InputError(name + " has " + std::to_string(s[0]) + " frames, videos[0] has " +
                       std::to_string(videos[0].shape[0]) + ": one call needs the same frame count for every video");
    const size_t n = element_count(s);
    if (!videos[i].data || videos[i].size < n)
      throw InputError(name + " of shape " + shape_str(s) + " needs " + std::to_string(n) + " bytes, got " +
                       std::to_string(videos[i].data ? videos[i].size : 0));
  }
  const int64_t T = videos[0].shape[0];
  const size_t frame_bytes = static_cast<size_t>(S * S * 3);
  std::vector<TensorMap> parts;
  for (size_t start = 0; start < videos.size(); start += batch_size) {
    const size_t b = std::min(batch_size, videos.size() - start);
    std::vector<uint8_t> batch(b * static_cast<size_t>(T) * frame_bytes);
    for (size_t v = 0; v < b; ++v) {
      const FrameView& video = videos[start + v];
      const int H = static_cast<int>(video.shape[1]), W = static_cast<int>(video.shape[2]);
      const size_t in_frame = static_cast<size_t>(H) * W * 3;
      for (int64_t t = 0; t < T; ++t) {
        std::vector<uint8_t> f = resize_and_crop(video.data + t * in_frame, H, W, 3, pre.size, pre.resize);
        std::memcpy(batch.data() + (v * T + t) * frame_bytes, f.data(), frame_bytes);
      }
    }
    parts.push_back(embed_frames(FrameView(batch, {static_cast<int64_t>(b), T, S, S, 3})));
  }
  return concat_maps(parts);
}

TensorMap Model::Impl::run_texts(const std::vector<std::string>& texts, size_t start, size_t end,
                                 std::vector<std::vector<int64_t>>& all_ids) const {
  Feed feed;
  if (text_graphs) {
    const std::string& parser = bundle.text_parser();
    if (parser != "rules")
      throw BundleError(bundle.manifest_path().string() + ": model.finsta.parser is '" + parser +
                        "'; the C++ runtime parses text scene graphs with 'rules' only (the Python runtime " +
                        "reads spacy too)");
    const auto* wordpiece = dynamic_cast<const WordPieceTokenizer*>(tokenizer.get());
    if (!wordpiece)  // the Python runtime has no offsets for a clip_bpe text either
      throw BundleError(bundle.manifest_path().string() + ": the text graph takes scene graphs, whose nodes are " +
                        "aligned to WordPiece token offsets; tokenizer kind '" + bundle.tokenizer_spec().kind +
                        "' has none");
    std::vector<std::string> chunk(texts.begin() + static_cast<std::ptrdiff_t>(start),
                                   texts.begin() + static_cast<std::ptrdiff_t>(end));
    TextGraphFeed g;
    try {
      g = text_graph_feed(chunk, *wordpiece, max_nodes);
    } catch (const InputError& e) {  // name the text by its index in the caller's list
      std::string msg = e.what();
      if (msg.rfind("texts[", 0) == 0) {
        const size_t close = msg.find(']');
        msg = "texts[" + std::to_string(start + std::stoul(msg.substr(6, close - 6))) + msg.substr(close);
      }
      throw InputError(msg);
    }
    const int64_t B = g.texts, L = g.tokens, N = g.nodes;
    for (const auto& name : text.input_names()) {
      if (name == "input_ids") feed.add(name, g.input_ids, {B, L});
      if (name == "attention_mask") feed.add(name, g.attention_mask, {B, L});
      if (name == "node_span") feed.add(name, g.node_span, {B, N, 2});
      if (name == "node_type") feed.add(name, g.node_type, {B, N});
      if (name == "node_mask") feed.add_bool(name, g.node_mask, {B, N});
      if (name == "adj") feed.add_bool(name, g.adj, {B, N, N});
      if (name == "edge_type") feed.add(name, g.edge_type, {B, N, N});
      if (name == "pred_order") feed.add(name, g.pred_order, {B, N});
    }
    return named(text, text.run(feed.names, feed.values));
  }
  std::vector<std::vector<int64_t>> rows(std::make_move_iterator(all_ids.begin() + static_cast<std::ptrdiff_t>(start)),
                                         std::make_move_iterator(all_ids.begin() + static_cast<std::ptrdiff_t>(end)));
  EncodedBatch b = tokenizer->encode_ids_batch(std::move(rows));
  feed.add("input_ids", b.input_ids, {b.rows, b.cols});
  feed.add("attention_mask", b.attention_mask, {b.rows, b.cols});
  return named(text, text.run(feed.names, feed.values));
}

TensorMap Model::embed_texts(const std::vector<std::string>& texts, size_t batch_size) const {
  if (texts.empty()) throw InputError("embed_text needs at least one text");
  if (batch_size == 0) throw InputError("embed_text: batch_size must be at least 1");
  std::vector<std::vector<int64_t>> all_ids;
  if (!impl_->text_graphs) {  // tokenized up front: a bad text fails before any graph runs
    all_ids.resize(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      try {
        all_ids[i] = impl_->tokenizer->text_ids(texts[i]);
      } catch (const InputError& e) {
        throw InputError("texts[" + std::to_string(i) + "]: " + e.what());
      }
      if (all_ids[i].empty())
        throw InputError("texts[" + std::to_string(i) + "] has no tokens: an empty text (or one of only " +
                         "whitespace and control characters) cannot be embedded");
    }
  }
  std::vector<TensorMap> parts;
  for (size_t start = 0; start < texts.size(); start += batch_size)
    parts.push_back(impl_->run_texts(texts, start, std::min(texts.size(), start + batch_size), all_ids));
  return concat_maps(parts);
}

Tensor Model::embed_text(const std::vector<std::string>& texts, size_t batch_size) const {
  TensorMap out = embed_texts(texts, batch_size);
  return std::move(out.at("text_embedding"));
}

TensorMap Model::score_parts(const TensorMap& video, const TensorMap& text) const {
  const GraphSpec& g = impl_->bundle.graph("scorer");
  const GraphSession& s = impl_->scorer;
  Feed feed;
  for (const auto& name : s.input_names()) {
    const bool from_video = name.rfind("video_", 0) == 0;
    const TensorMap& src = from_video ? video : text;
    if (!src.contains(name))
      throw InputError("score_parts needs '" + name + "' (an output of the " + (from_video ? "video" : "text") +
                       " graph), got " + join(sorted(src.names())));
    const Tensor& t = src.at(name);
    check_declared(t, declared(g, name), "scorer input " + name);
    feed.add_as(name, t, s.input_type(name), s.file() + " input " + name);
  }
  return named(s, s.run(feed.names, feed.values));
}

Tensor Model::score(const Tensor& video_embedding, const Tensor& text_embedding) const {
  const GraphSpec& g = impl_->bundle.graph("scorer");
  std::vector<std::string> video, text, all;
  for (const auto& i : g.inputs) {
    (i.name.rfind("video_", 0) == 0 ? video : text).push_back(i.name);
    all.push_back(i.name);
  }
  if (video.size() != 1 || text.size() != 1)
    throw InputError("bundle " + impl_->bundle.name() + " (" + impl_->bundle.family() + ") scores from " + join(all) +
                     ": use score_parts(embed_frames(...), embed_texts(...))");
  check_declared(video_embedding, declared(g, video[0]), "scorer input " + video[0]);
  check_declared(text_embedding, declared(g, text[0]), "scorer input " + text[0]);
  if (video_embedding.shape.back() != text_embedding.shape.back())
    throw InputError(video[0] + " " + shape_str(video_embedding.shape) + " and " + text[0] + " " +
                     shape_str(text_embedding.shape) + " differ in their embedding size");
  TensorMap v, t;
  v.add(video[0], video_embedding);
  t.add(text[0], text_embedding);
  TensorMap out = score_parts(v, t);
  return std::move(out.at(impl_->scorer.output_names().at(0)));
}

}  // namespace finsta_rt
