// Model: validation of inputs, batching, and the three graph sessions (see model.h).
#include "finsta_rt/model.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>

#include "finsta_rt/errors.h"
#include "finsta_rt/ops.h"
#include "finsta_rt/preprocess.h"
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
  WordPieceTokenizer tokenizer;
  GraphSession video, text, scorer;

  static WordPieceTokenizer make_tokenizer(const Bundle& b) {
    const TokenizerSpec& spec = b.tokenizer_spec();
    if (spec.kind != "wordpiece")
      throw BundleError(b.manifest_path().string() + ": tokenizer kind '" + spec.kind + "' is not supported");
    TokenizerOptions o;
    o.lowercase = spec.lowercase;
    try {
      o.max_length = spec.max_length;
      return WordPieceTokenizer::from_vocab_file(spec.vocab, o);
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

  Impl(Bundle b, const std::string& dev, const SessionConfig& c)
      : bundle(std::move(b)),
        device(dev),
        ops_library(c.ops_library),
        tokenizer(make_tokenizer(bundle)),
        video(bundle.graph("video"), c),
        text(bundle.graph("text"), c),
        scorer(bundle.graph("scorer"), c) {
    auto need = [](const GraphSession& s, const std::vector<std::string>& names) {
      for (const auto& n : names)
        if (!s.has_input(n)) {
          std::string have;
          for (const auto& h : s.input_names()) have += (have.empty() ? "" : ", ") + h;
          throw BundleError(s.file() + " has inputs [" + have + "], expected an input named " + n);
        }
    };
    if (video.input_names().size() != 1)
      throw BundleError(video.file() + " must have one input (frames), has " +
                        std::to_string(video.input_names().size()));
    need(text, {"input_ids", "attention_mask"});
    need(scorer, {"video_embedding", "text_embedding"});
  }
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
const WordPieceTokenizer& Model::tokenizer() const { return impl_->tokenizer; }
const std::string& Model::device() const { return impl_->device; }
const std::filesystem::path& Model::ops_library() const { return impl_->ops_library; }

TensorMap Model::embed_frames(const FrameView& frames) const {
  const int S = impl_->bundle.preprocess().size;
  const auto& shape = frames.shape;
  const bool ok =
      shape.size() == 5 && shape[0] >= 0 && shape[1] >= 0 && shape[2] == S && shape[3] == S && shape[4] == 3;
  if (!ok)
    throw InputError("frames must be uint8 [B, T, " + std::to_string(S) + ", " + std::to_string(S) +
                     ", 3] for bundle " + impl_->bundle.name() + ", got " + shape_str(shape));
  if (shape[0] == 0 || shape[1] == 0)
    throw InputError("frames has an empty batch or no frames: shape " + shape_str(shape));
  const size_t n = element_count(shape);
  if (!frames.data) throw InputError("frames of shape " + shape_str(shape) + " have a null data pointer");
  if (frames.size < n)
    throw InputError("frames of shape " + shape_str(shape) + " need " + std::to_string(n) + " bytes, got " +
                     std::to_string(frames.size));
  std::vector<Ort::Value> inputs;
  inputs.push_back(cpu_tensor(frames.data, n, shape, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8));
  std::vector<Tensor> outs = impl_->video.run(impl_->video.input_names(), inputs);
  TensorMap result;
  for (size_t i = 0; i < outs.size(); ++i) result.add(impl_->video.output_names()[i], std::move(outs[i]));
  return result;
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
  TensorMap result;
  for (const auto& name : parts[0].names()) {
    std::vector<Tensor> pieces;
    for (auto& p : parts) pieces.push_back(std::move(p.at(name)));
    result.add(name, concat_rows(pieces));
  }
  return result;
}

Tensor Model::embed_text(const std::vector<std::string>& texts, size_t batch_size) const {
  if (texts.empty()) throw InputError("embed_text needs at least one text");
  if (batch_size == 0) throw InputError("embed_text: batch_size must be at least 1");
  const WordPieceTokenizer& tok = impl_->tokenizer;
  std::vector<std::vector<int64_t>> all_ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t>& ids = all_ids[i];
    try {
      ids = tok.text_ids(texts[i]);
    } catch (const InputError& e) {
      throw InputError("texts[" + std::to_string(i) + "]: " + e.what());
    }
    if (ids.empty())
      throw InputError("texts[" + std::to_string(i) + "] has no tokens: an empty text (or one of only whitespace " +
                       "and control characters) cannot be embedded");
  }
  const std::vector<std::string> names = {"input_ids", "attention_mask"};
  const std::vector<std::string> wanted = {impl_->text.output_names().at(0)};
  std::vector<Tensor> parts;
  for (size_t start = 0; start < texts.size(); start += batch_size) {
    std::vector<std::vector<int64_t>> chunk(
        std::make_move_iterator(all_ids.begin() + static_cast<std::ptrdiff_t>(start)),
        std::make_move_iterator(all_ids.begin() +
                                static_cast<std::ptrdiff_t>(std::min(texts.size(), start + batch_size))));
    EncodedBatch b = tok.encode_ids_batch(std::move(chunk));
    const std::vector<int64_t> shape = {b.rows, b.cols};
    std::vector<Ort::Value> inputs;
    inputs.push_back(cpu_tensor(b.input_ids.data(), b.input_ids.size() * sizeof(int64_t), shape,
                                ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64));
    inputs.push_back(cpu_tensor(b.attention_mask.data(), b.attention_mask.size() * sizeof(int64_t), shape,
                                ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64));
    parts.push_back(std::move(impl_->text.run(names, inputs, wanted).at(0)));
  }
  return concat_rows(parts);
}

Tensor Model::score(const Tensor& video_embedding, const Tensor& text_embedding) const {
  const GraphSpec& g = impl_->bundle.graph("scorer");
  check_declared(video_embedding, declared(g, "video_embedding"), "scorer input video_embedding");
  check_declared(text_embedding, declared(g, "text_embedding"), "scorer input text_embedding");
  if (video_embedding.shape.back() != text_embedding.shape.back())
    throw InputError("video_embedding " + shape_str(video_embedding.shape) + " and text_embedding " +
                     shape_str(text_embedding.shape) + " differ in their embedding size");
  std::vector<Ort::Value> inputs;
  inputs.push_back(cpu_tensor(video_embedding.data.data(), video_embedding.data.size() * sizeof(float),
                              video_embedding.shape, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT));
  inputs.push_back(cpu_tensor(text_embedding.data.data(), text_embedding.data.size() * sizeof(float),
                              text_embedding.shape, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT));
  return std::move(
      impl_->scorer.run({"video_embedding", "text_embedding"}, inputs, {impl_->scorer.output_names().at(0)}).at(0));
}

}  // namespace finsta_rt
