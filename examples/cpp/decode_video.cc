#include "decode_video.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

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

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

class Decoder {
 public:
  Decoder(const std::string& path, int frames) : path_(path), n_(frames) {
    AVFormatContext* fmt = nullptr;
    int rc = avformat_open_input(&fmt, path.c_str(), nullptr, nullptr);
    if (rc < 0) fail("cannot open", rc);
    fmt_.reset(fmt);
    if ((rc = avformat_find_stream_info(fmt, nullptr)) < 0) fail("cannot read stream info of", rc);
    const AVCodec* codec = nullptr;
    stream_ = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream_ < 0 || !codec) throw std::runtime_error(path + " has no decodable video stream");
    AVStream* st = fmt->streams[stream_];
    codec_.reset(avcodec_alloc_context3(codec));
    if (!codec_) throw std::runtime_error("out of memory decoding " + path);
    if ((rc = avcodec_parameters_to_context(codec_.get(), st->codecpar)) < 0) fail("cannot set up a decoder for", rc);
    codec_->thread_count = 0;  // FFmpeg picks
    if ((rc = avcodec_open2(codec_.get(), codec, nullptr)) < 0) fail("cannot open the decoder for", rc);
    tb_ = av_q2d(st->time_base);
    start_ = st->start_time != AV_NOPTS_VALUE ? st->start_time * tb_ : 0.0;
    duration_ = st->duration != AV_NOPTS_VALUE && st->duration > 0 ? st->duration * tb_
                : fmt->duration > 0                                ? static_cast<double>(fmt->duration) / AV_TIME_BASE
                                                                   : 0.0;
    if (duration_ <= 0) throw std::runtime_error(path + ": unknown duration, cannot sample uniformly");
    for (int i = 0; i < n_; ++i) targets_.push_back(start_ + (i + 0.5) * duration_ / n_);
  }

  DecodedFrames run() {
    std::unique_ptr<AVPacket, PacketFreer> pkt(av_packet_alloc());
    FramePtr frame(av_frame_alloc());
    bool done = false;
    while (!done) {
      int rc = av_read_frame(fmt_.get(), pkt.get());
      if (rc == AVERROR_EOF) break;
      if (rc < 0) fail("cannot read", rc);
      if (pkt->stream_index == stream_) {
        rc = avcodec_send_packet(codec_.get(), pkt.get());
        if (rc < 0 && rc != AVERROR(EAGAIN) && decoded_ == 0) fail("cannot decode", rc);
        done = receive(frame.get());
      }
      av_packet_unref(pkt.get());
    }
    if (!done) {  // flush the decoder
      avcodec_send_packet(codec_.get(), nullptr);
      receive(frame.get());
    }
    if (!prev_) throw std::runtime_error(path_ + " has no decodable video frames");
    while (k_ < n_) keep(prev_.get());  // targets past the last frame take it
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& what, int code) const {
    throw std::runtime_error(what + " " + path_ + ": " + av_error(code));
  }

  // Frames from the decoder; each target takes the frame nearest in time. True when all are taken.
  bool receive(AVFrame* frame) {
    while (avcodec_receive_frame(codec_.get(), frame) == 0) {
      ++decoded_;
      const int64_t pts = frame->best_effort_timestamp;
      if (pts == AV_NOPTS_VALUE) continue;
      const double t = pts * tb_;
      while (k_ < n_ && t >= targets_[k_]) {
        const double tgt = targets_[k_];
        keep(prev_ && tgt - prev_time_ < t - tgt ? prev_.get() : frame,
             prev_ && tgt - prev_time_ < t - tgt ? prev_time_ : t);
      }
      if (k_ == n_) return true;
      prev_.reset(av_frame_clone(frame));
      prev_time_ = t;
      av_frame_unref(frame);
    }
    return false;
  }

  void keep(const AVFrame* f) { keep(f, prev_time_); }

  void keep(const AVFrame* f, double t) {
    if (out_.frames == 0) {
      out_.height = f->height;
      out_.width = f->width;
      out_.duration = duration_;
      out_.rgb.resize(static_cast<size_t>(n_) * f->height * f->width * 3);
    }
    sws_.reset(sws_getContext(f->width, f->height, static_cast<AVPixelFormat>(f->format), out_.width, out_.height,
                              AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr));
    if (!sws_) throw std::runtime_error(path_ + ": cannot convert its pixel format to RGB");
    uint8_t* dst[4] = {out_.rgb.data() + static_cast<size_t>(k_) * out_.height * out_.width * 3, nullptr, nullptr,
                       nullptr};
    int stride[4] = {out_.width * 3, 0, 0, 0};
    sws_scale(sws_.get(), f->data, f->linesize, 0, f->height, dst, stride);
    out_.times.push_back(t);
    out_.frames = ++k_;
  }

  std::string path_;
  int n_;
  std::unique_ptr<AVFormatContext, FormatCloser> fmt_;
  std::unique_ptr<AVCodecContext, CodecFreer> codec_;
  std::unique_ptr<SwsContext, SwsFreer> sws_;
  int stream_ = -1;
  double tb_ = 0, start_ = 0, duration_ = 0, prev_time_ = 0;
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
