#include "decode_video.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <unordered_map>
#include <utility>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

// The same frames as finsta_rt.video.read_frames (docs/runtime.md): a packet scan (demuxing, no decoding)
// gives each packet's pts and keyframe flag; each target takes the packet nearest in time (a tie goes to the
// later one); only the packets from the keyframe before each chosen packet up to it are decoded. Where the
// file disagrees with its scan (a seek lands elsewhere, a chosen frame does not come out), one pass over
// the whole video decides, as before.

namespace {

struct FormatCloser {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
struct CodecFreer {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct FrameFreer {
  void operator()(AVFrame* p) const { av_frame_free(&p); }
};
struct PacketFreer {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFreer {
  void operator()(SwsContext* p) const { sws_freeContext(p); }
};
using FramePtr = std::unique_ptr<AVFrame, FrameFreer>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFreer>;

struct PlanFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct SeekFailed : PlanFailed {  // the plan may still work demuxing through from the start
  using PlanFailed::PlanFailed;
};

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// Formats whose header duration is not the video stream's span (finsta_rt.video RAW_STREAM_FORMATS and
// SPAN_FROM_PACKETS): raw elementary streams guess it from the bitrate, Matroska counts it from 0.
bool span_from_packets(const char* format_name) {
  static const char* const names[] = {"mpegvideo", "h264", "hevc",  "m4v", "mjpeg", "rawvideo", "cavsvideo", "vc1",
                                      "h261",      "h263", "dirac", "obu", "vvc",   "avs2",     "avs3"};
  const std::string full = format_name;
  for (const char* n : names)
    if (full == n) return true;
  return full.rfind("matroska", 0) == 0;
}

constexpr int kSeekGapPackets = 32;  // finsta_rt.video_plan.SEEK_GAP_PACKETS
constexpr int kSeekTries = 3;

class Decoder {
 public:
  Decoder(const std::string& path, int frames) : path_(path), n_(frames) {
    open_input();
    scan();
    AVStream* st = fmt_->streams[stream_];
    if (span_from_packets(fmt_->iformat->name) || (st->duration == AV_NOPTS_VALUE && fmt_->duration <= 0)) {
      if (times_.empty()) throw std::runtime_error(path + " has no video frames");
      start_ = *std::min_element(times_.begin(), times_.end());
      duration_ = end_ - start_;
    } else {
      start_ = st->start_time != AV_NOPTS_VALUE ? st->start_time * tb_ : 0.0;
      duration_ = st->duration != AV_NOPTS_VALUE && st->duration > 0 ? st->duration * tb_
                  : fmt_->duration > 0 ? static_cast<double>(fmt_->duration) / AV_TIME_BASE
                                       : 0.0;
    }
    if (duration_ <= 0) throw std::runtime_error(path + ": unknown duration, cannot sample uniformly");
    for (int i = 0; i < n_; ++i) targets_.push_back(start_ + (i + 0.5) * duration_ / n_);
  }

  DecodedFrames run() {
    if (plannable_) {
      try {
        try {
          open_input();
          return run_planned(true);
        } catch (const SeekFailed&) {
          open_input();
          return run_planned(false);
        }
      } catch (const PlanFailed&) {  // one pass from a fresh open decides
      }
    }
    open_input();
    return run_sequential();
  }

 private:
  [[noreturn]] void fail(const std::string& what, int code) const {
    throw std::runtime_error(what + " " + path_ + ": " + av_error(code));
  }

  void open_input() {
    codec_.reset();
    fmt_.reset();
    AVFormatContext* fmt = nullptr;
    int rc = avformat_open_input(&fmt, path_.c_str(), nullptr, nullptr);
    if (rc < 0) fail("cannot open", rc);
    fmt_.reset(fmt);
    if ((rc = avformat_find_stream_info(fmt, nullptr)) < 0) fail("cannot read stream info of", rc);
    const AVCodec* codec = nullptr;
    stream_ = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream_ < 0 || !codec) throw std::runtime_error(path_ + " has no decodable video stream");
    AVStream* st = fmt->streams[stream_];
    codec_.reset(avcodec_alloc_context3(codec));
    if (!codec_) throw std::runtime_error("out of memory decoding " + path_);
    if ((rc = avcodec_parameters_to_context(codec_.get(), st->codecpar)) < 0) fail("cannot set up a decoder for", rc);
    codec_->thread_count = 0;  // FFmpeg picks
    if ((rc = avcodec_open2(codec_.get(), codec, nullptr)) < 0) fail("cannot open the decoder for", rc);
    tb_ = av_q2d(st->time_base);
    tb_num_ = st->time_base.num;
    tb_den_ = st->time_base.den;
  }

  // Seconds of a pts as PyAV computes VideoFrame.time.
  double seconds(int64_t pts) const { return static_cast<double>(pts) * tb_num_ / tb_den_; }

  // The next packet of the video stream (empty ones are no frames), false at the end.
  bool read_video_packet(AVPacket* pkt) {
    while (true) {
      int rc = av_read_frame(fmt_.get(), pkt);
      if (rc == AVERROR_EOF) return false;
      if (rc < 0) return false;  // a cut-off file: what came before stands
      if (pkt->stream_index == stream_ && pkt->size > 0) return true;
      av_packet_unref(pkt);
    }
  }

  void scan() {
    PacketPtr pkt(av_packet_alloc());
    const AVRational tb = fmt_->streams[stream_]->time_base;
    bool all_pts = true;
    while (read_video_packet(pkt.get())) {
      all_pts = all_pts && pkt->pts != AV_NOPTS_VALUE;
      // Older FFmpeg leaves most pts of a raw stream unset: its span then comes from the dts.
      const int64_t t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      if (t != AV_NOPTS_VALUE) {
        times_.push_back(seconds(t));
        end_ = std::max(end_, static_cast<double>(t + std::max<int64_t>(pkt->duration, 0)) * av_q2d(tb));
      }
      pts_.push_back(pkt->pts);
      key_.push_back((pkt->flags & AV_PKT_FLAG_KEY) != 0);
      av_packet_unref(pkt.get());
    }
    std::vector<int64_t> sorted = pts_;
    std::sort(sorted.begin(), sorted.end());
    plannable_ = all_pts && !pts_.empty() && std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();
  }

  // finsta_rt.video_plan.nearest_packets: the packet nearest each target, a tie to the later.
  std::vector<size_t> nearest() const {
    std::vector<size_t> order(pts_.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return seconds(pts_[a]) < seconds(pts_[b]); });
    std::vector<size_t> chosen;
    for (double tgt : targets_) {
      auto it =
          std::lower_bound(order.begin(), order.end(), tgt, [&](size_t i, double t) { return seconds(pts_[i]) < t; });
      size_t after = std::min<size_t>(it - order.begin(), order.size() - 1);
      const double ta = seconds(pts_[order[after]]);
      bool earlier = after > 0 && ta >= tgt && tgt - seconds(pts_[order[after - 1]]) < ta - tgt;
      chosen.push_back(order[earlier ? after - 1 : after]);
    }
    return chosen;
  }

  // finsta_rt.video_plan.decode_ranges: from the keyframe before each chosen packet (one shown no later),
  // decoding on when that keyframe lies inside the previous range.
  std::vector<std::pair<size_t, size_t>> ranges(std::vector<size_t> chosen) const {
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
    std::vector<std::pair<size_t, size_t>> spans, out;
    for (size_t c : chosen) {
      size_t first = 0;
      for (size_t j = c + 1; j-- > 0;)
        if (key_[j] && pts_[j] <= pts_[c]) {
          first = j;
          break;
        }
      spans.emplace_back(first, c);
    }
    std::sort(spans.begin(), spans.end());  // a leading frame's span may start before an earlier one's
    for (auto [first, last] : spans) {
      if (!out.empty() && first <= out.back().second + 1)
        out.back().second = std::max(out.back().second, last);
      else
        out.emplace_back(first, last);
    }
    return out;
  }

  DecodedFrames run_planned(bool allow_seek) {
    const std::vector<size_t> chosen = nearest();
    std::unordered_map<int64_t, size_t> index;
    for (size_t i = 0; i < pts_.size(); ++i) index[pts_[i]] = i;
    std::unordered_map<int64_t, std::vector<int>> slots;  // pts -> the targets that chose it
    for (int k = 0; k < n_; ++k) slots[pts_[chosen[k]]].push_back(k);
    size_t missing = slots.size();
    PacketPtr pkt(av_packet_alloc());
    FramePtr frame(av_frame_alloc());
    size_t pos = 0;        // index of the packet read next
    bool pending = false;  // pkt holds packet `pos` already (read to learn where a seek landed)
    auto take = [&](AVFrame* f) {
      auto it = slots.find(f->pts);
      if (it == slots.end() || it->second.empty()) return;
      for (int k : it->second) store(f, k, seconds(f->pts));
      it->second.clear();
      --missing;
    };
    auto receive = [&]() {
      while (avcodec_receive_frame(codec_.get(), frame.get()) == 0) {
        take(frame.get());
        av_frame_unref(frame.get());
      }
    };
    bool sought = false;
    auto next = [&]() {
      if (!pending && !read_video_packet(pkt.get())) throw PlanFailed("the stream ended early");
      if (pkt->pts != pts_[pos]) {  // after a seek some demuxers (MPEG-PS) cut packets otherwise
        if (sought) throw SeekFailed("packets differ from the scan after a seek");
        throw PlanFailed("packets differ from the scan");
      }
      pending = false;
      ++pos;
    };
    for (auto [first, last] : ranges(chosen)) {
      if (allow_seek && first > pos + kSeekGapPackets) {
        sought = true;
        std::vector<size_t> tries{first};
        for (size_t j = first; j-- > 0 && tries.size() < kSeekTries;)
          if (key_[j]) tries.push_back(j);
        bool landed = false;
        for (size_t k : tries) {
          if (pending) av_packet_unref(pkt.get());
          pending = false;
          if (av_seek_frame(fmt_.get(), stream_, pts_[k], AVSEEK_FLAG_BACKWARD) < 0) break;
          if (!read_video_packet(pkt.get())) break;
          auto at = index.find(pkt->pts);
          if (at == index.end()) break;
          pos = at->second;
          pending = true;
          if (pos <= first) {
            landed = true;
            break;
          }
        }
        if (!landed) throw SeekFailed("a seek landed elsewhere");
      }
      if (pos > first) throw SeekFailed("the demuxer is past the range");
      while (pos < first) {
        next();
        av_packet_unref(pkt.get());
      }
      while (pos <= last) {
        next();
        const int64_t p = pkt->pts;
        const auto want = slots.find(p);
        const bool chosen_packet = want != slots.end();
        // A packet nobody chose goes with skip_frame = NONREF: a non-reference frame (a B-frame) is then not
        // decoded, which changes no other frame (finsta_rt.video_plan.decode_planned does the same).
        codec_->skip_frame = chosen_packet ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
        int rc = avcodec_send_packet(codec_.get(), pkt.get());
        av_packet_unref(pkt.get());
        if (rc < 0 && chosen_packet && !want->second.empty()) throw PlanFailed("the decoder refused a chosen packet");
        receive();
        if (missing == 0) return std::move(out_);
      }
      avcodec_send_packet(codec_.get(), nullptr);  // drain: the frames the decoder still holds
      receive();
      if (missing == 0) return std::move(out_);
      avcodec_flush_buffers(codec_.get());
    }
    codec_->skip_frame = AVDISCARD_DEFAULT;
    throw PlanFailed("chosen frames did not come out of the decoder");
  }

  DecodedFrames run_sequential() {
    out_ = DecodedFrames();
    PacketPtr pkt(av_packet_alloc());
    FramePtr frame(av_frame_alloc());
    bool done = false;
    while (!done && read_video_packet(pkt.get())) {
      int rc = avcodec_send_packet(codec_.get(), pkt.get());
      if (rc < 0 && rc != AVERROR(EAGAIN) && decoded_ == 0) fail("cannot decode", rc);
      done = receive_sequential(frame.get());
      av_packet_unref(pkt.get());
    }
    if (!done) {  // flush the decoder
      avcodec_send_packet(codec_.get(), nullptr);
      receive_sequential(frame.get());
    }
    if (!prev_) throw std::runtime_error(path_ + " has no decodable video frames");
    while (k_ < n_) keep(prev_.get(), prev_time_);  // targets past the last frame take it
    return std::move(out_);
  }

  // Frames from the decoder; each target takes the frame nearest in time. True when all are taken.
  bool receive_sequential(AVFrame* frame) {
    while (avcodec_receive_frame(codec_.get(), frame) == 0) {
      ++decoded_;
      const int64_t pts = frame->best_effort_timestamp;
      if (pts == AV_NOPTS_VALUE) continue;
      const double t = seconds(pts);
      while (k_ < n_ && t >= targets_[k_]) {
        const double tgt = targets_[k_];
        const bool earlier = prev_ && tgt - prev_time_ < t - tgt;
        keep(earlier ? prev_.get() : frame, earlier ? prev_time_ : t);
      }
      if (k_ == n_) return true;
      prev_.reset(av_frame_clone(frame));
      prev_time_ = t;
      av_frame_unref(frame);
    }
    return false;
  }

  void keep(const AVFrame* f, double t) { store(f, k_++, t); }

  // RGB24 of frame f into target slot k.
  void store(const AVFrame* f, int k, double t) {
    if (out_.rgb.empty()) {
      out_.height = f->height;
      out_.width = f->width;
      out_.duration = duration_;
      out_.frames = n_;
      out_.rgb.resize(static_cast<size_t>(n_) * f->height * f->width * 3);
      out_.times.assign(n_, 0.0);
    }
    if (f->width != out_.width || f->height != out_.height)
      throw std::runtime_error(path_ + ": frame size changes midway, cannot stack its frames");
    sws_.reset(sws_getContext(f->width, f->height, static_cast<AVPixelFormat>(f->format), out_.width, out_.height,
                              AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr));
    if (!sws_) throw std::runtime_error(path_ + ": cannot convert its pixel format to RGB");
    uint8_t* dst[4] = {out_.rgb.data() + static_cast<size_t>(k) * out_.height * out_.width * 3, nullptr, nullptr,
                       nullptr};
    int stride[4] = {out_.width * 3, 0, 0, 0};
    sws_scale(sws_.get(), f->data, f->linesize, 0, f->height, dst, stride);
    out_.times[k] = t;
  }

  std::string path_;
  int n_;
  std::unique_ptr<AVFormatContext, FormatCloser> fmt_;
  std::unique_ptr<AVCodecContext, CodecFreer> codec_;
  std::unique_ptr<SwsContext, SwsFreer> sws_;
  int stream_ = -1;
  double tb_ = 0, start_ = 0, duration_ = 0, prev_time_ = 0, end_ = -INFINITY;
  int64_t tb_num_ = 0, tb_den_ = 1;
  std::vector<int64_t> pts_;  // the scan, decode order
  std::vector<bool> key_;
  std::vector<double> times_;
  bool plannable_ = false;
  std::vector<double> targets_;
  FramePtr prev_;
  int k_ = 0;
  int64_t decoded_ = 0;
  DecodedFrames out_;
};

}  // namespace

DecodedFrames decode_uniform(const std::string& path, int frames) {
  if (frames <= 0) throw std::invalid_argument("frames must be positive");
  av_log_set_level(AV_LOG_ERROR);
  return Decoder(path, frames).run();
}
