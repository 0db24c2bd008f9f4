#include "io/video.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <exception>
#include <utility>

#include "core/error.h"

#ifdef Y7_HAVE_FFMPEG
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/mathematics.h>
#include <libswscale/swscale.h>
}
#endif

namespace y7::io {

namespace {

std::string lower_extension(const std::string& path) {
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

}  // namespace

bool is_video_path(const std::string& path) {
  static const char* const kFormats[] = {"mov", "avi", "mp4", "mpg", "mpeg", "m4v", "wmv", "mkv"};
  std::string ext = lower_extension(path);
  for (const char* f : kFormats)
    if (ext == f) return true;
  return false;
}

#ifndef Y7_HAVE_FFMPEG

// ---------------------------------------------------------------------------------------------
// Built without FFmpeg: every entry point says how to get video support.

namespace {
[[noreturn]] void no_video(const std::string& path) {
  fail("cannot use video '", path,
       "': video support was not built: install libavformat-dev libavcodec-dev libavutil-dev "
       "libswscale-dev (scripts/install_deps.sh) and rebuild");
}
}  // namespace

bool video_supported() { return false; }

struct VideoReader::Impl {
  std::string path;
};
VideoReader::VideoReader(const std::string& path) { no_video(path); }
VideoReader::~VideoReader() = default;
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;
bool VideoReader::read(std::vector<uint8_t>&, int&, int&) { no_video(p_ ? p_->path : ""); }
int VideoReader::width() const { return 0; }
int VideoReader::height() const { return 0; }
double VideoReader::fps() const { return 0; }
int64_t VideoReader::frame_count() const { return 0; }
int64_t VideoReader::frame_index() const { return 0; }
const std::string& VideoReader::path() const {
  static const std::string empty;
  return p_ ? p_->path : empty;
}

struct VideoWriter::Impl {
  std::string path;
};
VideoWriter::VideoWriter(const std::string& path, int, int, double) { no_video(path); }
VideoWriter::~VideoWriter() = default;
VideoWriter::VideoWriter(VideoWriter&&) noexcept = default;
VideoWriter& VideoWriter::operator=(VideoWriter&&) noexcept = default;
void VideoWriter::write(const uint8_t*) { no_video(p_ ? p_->path : ""); }
void VideoWriter::close() {}
void VideoWriter::abort() {}
int64_t VideoWriter::frames_written() const { return 0; }

#else  // Y7_HAVE_FFMPEG

// ---------------------------------------------------------------------------------------------
// FFmpeg plumbing shared by reader and writer.

namespace {

// Largest frame we accept: either side, and in pixels (8K UHD is 33 Mpx).
constexpr int kMaxSide = 16384;
constexpr int64_t kMaxPixels = int64_t(1) << 26;
// A stream is declared undecodable after this many rejected packets in a row.
constexpr int kMaxConsecutiveErrors = 64;

std::string av_err(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  if (av_strerror(err, buf, sizeof(buf)) < 0) std::snprintf(buf, sizeof(buf), "error %d", err);
  return buf;
}

// FFmpeg logs to stderr by default, which would spam the CLI on every damaged packet. Keep the
// messages quiet (Y7_FFMPEG_LOG=1 restores them) but remember the last error-level one per
// thread so it can be added to our own error message.
thread_local std::string t_last_log;

void log_callback(void* avcl, int level, const char* fmt, va_list vl) {
  static const bool verbose = [] {
    const char* e = std::getenv("Y7_FFMPEG_LOG");
    return e && *e && std::strcmp(e, "0") != 0;
  }();
  if (verbose) {
    va_list copy;
    va_copy(copy, vl);
    av_log_default_callback(avcl, level, fmt, copy);
    va_end(copy);
  }
  if (level > AV_LOG_ERROR) return;
  char line[512];
  int print_prefix = 0;
  if (av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix) < 0) return;
  std::string s(line);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  t_last_log = std::move(s);
}

void init_ffmpeg() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(log_callback); });
}

// " (<last FFmpeg log line>)" when there is one, for the tail of an error message.
std::string log_detail() {
  std::string s = t_last_log;
  t_last_log.clear();
  if (s.empty()) return "";
  return " (" + s + ")";
}

// The file protocol is forced (a name like "rtmp:x" or "concat:a|b" stays a file name).
std::string file_url(const std::string& path) { return "file:" + path; }

struct FormatInputDeleter {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

using FormatInputPtr = std::unique_ptr<AVFormatContext, FormatInputDeleter>;
using CodecPtr = std::unique_ptr<AVCodecContext, CodecDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;

FramePtr alloc_frame() {
  FramePtr f(av_frame_alloc());
  Y7_CHECK(f, "out of memory allocating a video frame");
  return f;
}
PacketPtr alloc_packet() {
  PacketPtr p(av_packet_alloc());
  Y7_CHECK(p, "out of memory allocating a video packet");
  return p;
}

// A frame whose buffers cover the size rounded up to whole 16x16 macroblocks (plus FFmpeg's own
// padding), all zeroed, presented as w x h. swscale and the encoder read a little past the
// visible edge; this keeps those reads defined, and the output deterministic.
int align16(int v) { return (v + 15) & ~15; }

FramePtr alloc_padded_frame(AVPixelFormat fmt, int w, int h) {
  FramePtr f = alloc_frame();
  f->format = fmt;
  f->width = align16(w);
  f->height = align16(h);
  int ret = av_frame_get_buffer(f.get(), 0);
  Y7_CHECK(ret >= 0, "cannot allocate a ", w, "x", h, " video frame: ", av_err(ret));
  for (int i = 0; i < AV_NUM_DATA_POINTERS && f->buf[i]; ++i)
    std::memset(f->buf[i]->data, 0, f->buf[i]->size);
  f->width = w;
  f->height = h;
  return f;
}

// Repeats the last column and row of plane `p` over the padding up to the macroblock-aligned
// size (what the encoder's own edge emulation would do), so edge blocks code cheaply.
void extend_plane(AVFrame* f, int p, int pw, int ph, int bytes_pp, int aw, int ah) {
  uint8_t* base = f->data[p];
  const ptrdiff_t ls = f->linesize[p];
  for (int y = 0; y < ph; ++y) {
    uint8_t* row = base + y * ls;
    for (int x = pw; x < aw; ++x)
      std::memcpy(row + x * bytes_pp, row + (pw - 1) * bytes_pp, bytes_pp);
  }
  for (int y = ph; y < ah; ++y)
    std::memcpy(base + y * ls, base + (ph - 1) * ls, static_cast<size_t>(aw) * bytes_pp);
}

double valid_rate(AVRational r) {
  if (r.num <= 0 || r.den <= 0) return 0;
  double v = av_q2d(r);
  return (std::isfinite(v) && v > 0 && v <= 1000) ? v : 0;
}

}  // namespace

bool video_supported() { return true; }

// ---------------------------------------------------------------------------------------------
// Reader

struct VideoReader::Impl {
  std::string path;
  FormatInputPtr fmt;
  CodecPtr dec;
  FramePtr frame = alloc_frame();
  FramePtr rgb_frame = alloc_frame();  // aligned, padded swscale target
  PacketPtr pkt = alloc_packet();
  SwsPtr sws;
  int stream = -1;
  int width = 0, height = 0;
  double fps = 30;
  int64_t frame_count = 0;
  int64_t index = 0;
  bool flushing = false;  // end of input reached, decoder drained with a null packet
  bool done = false;
  int consecutive_errors = 0;
  int64_t total_errors = 0;
  std::string last_error;

  [[noreturn]] void fail_decode(const std::string& what) {
    fail("cannot decode video '", path, "': ", what);
  }

  void note_error(int err) {
    ++total_errors;
    last_error = av_err(err) + log_detail();
    if (++consecutive_errors > kMaxConsecutiveErrors)
      fail_decode(std::to_string(consecutive_errors) + " damaged packets in a row after frame " +
                  std::to_string(index) + ": " + last_error);
  }

  // At end of input: a stream that produced no frame at all is an error, not an empty video.
  bool finish() {
    done = true;
    if (index == 0)
      fail_decode(total_errors ? "no frame could be decoded: " + last_error
                               : std::string("the video stream holds no frames"));
    return false;
  }

  void convert(std::vector<uint8_t>& rgb, int& w, int& h) {
    const AVFrame* f = frame.get();
    Y7_CHECK(f->width > 0 && f->height > 0 && f->width <= kMaxSide && f->height <= kMaxSide &&
                 int64_t(f->width) * f->height <= kMaxPixels,
             "video '", path, "': frame ", index + 1, " has unsupported size ", f->width, "x",
             f->height);
    Y7_CHECK(f->format >= 0, "video '", path, "': frame ", index + 1,
             " has no pixel format");
    sws.reset(sws_getCachedContext(sws.release(), f->width, f->height,
                                   static_cast<AVPixelFormat>(f->format), f->width, f->height,
                                   AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr));
    if (!sws) {
      const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format));
      fail("video '", path, "': cannot convert pixel format ", name ? name : "?", " to RGB");
    }
    if (rgb_frame->width != f->width || rgb_frame->height != f->height) {
      av_frame_unref(rgb_frame.get());
      rgb_frame->format = AV_PIX_FMT_RGB24;
      rgb_frame->width = f->width;
      rgb_frame->height = f->height;
      int ret = av_frame_get_buffer(rgb_frame.get(), 0);
      Y7_CHECK(ret >= 0, "video '", path, "': cannot allocate a frame: ", av_err(ret));
    }
    int ret = sws_scale(sws.get(), f->data, f->linesize, 0, f->height, rgb_frame->data,
                        rgb_frame->linesize);
    Y7_CHECK(ret == f->height, "video '", path, "': colour conversion failed on frame ",
             index + 1);
    w = f->width;
    h = f->height;
    const size_t row = static_cast<size_t>(w) * 3;
    rgb.resize(row * static_cast<size_t>(h));
    for (int y = 0; y < h; ++y)
      std::memcpy(rgb.data() + row * y, rgb_frame->data[0] + static_cast<ptrdiff_t>(y) *
                                                                 rgb_frame->linesize[0],
                  row);
  }

  bool read(std::vector<uint8_t>& rgb, int& w, int& h) {
    if (done) return false;
    for (;;) {
      int ret = avcodec_receive_frame(dec.get(), frame.get());
      if (ret >= 0) {
        consecutive_errors = 0;
        convert(rgb, w, h);
        av_frame_unref(frame.get());
        ++index;
        return true;
      }
      if (ret == AVERROR_EOF) return finish();
      if (ret != AVERROR(EAGAIN)) {
        note_error(ret);
        if (flushing) return finish();
        continue;
      }
      if (flushing) return finish();  // drained decoder asks for more: nothing left
      ret = av_read_frame(fmt.get(), pkt.get());
      if (ret < 0) {
        // End of file, or a demuxer that cannot go on (truncated / damaged container): like
        // cv2, the frames decoded so far are the video.
        if (ret != AVERROR_EOF) note_error(ret);
        flushing = true;
        ret = avcodec_send_packet(dec.get(), nullptr);
        if (ret < 0 && ret != AVERROR_EOF) return finish();
        continue;
      }
      if (pkt->stream_index != stream) {
        av_packet_unref(pkt.get());
        continue;
      }
      ret = avcodec_send_packet(dec.get(), pkt.get());
      av_packet_unref(pkt.get());
      if (ret < 0 && ret != AVERROR(EAGAIN)) note_error(ret);
    }
  }
};

VideoReader::VideoReader(const std::string& path) : p_(std::make_unique<Impl>()) {
  init_ffmpeg();
  Impl& s = *p_;
  s.path = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    fail("cannot open video '", path, "': ", std::strerror(errno));
  Y7_CHECK(S_ISREG(st.st_mode), "cannot open video '", path, "': not a regular file");

  t_last_log.clear();
  AVFormatContext* raw = nullptr;
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "protocol_whitelist", "file", 0);
  int ret = avformat_open_input(&raw, file_url(path).c_str(), nullptr, &opts);
  av_dict_free(&opts);
  if (ret < 0) fail("cannot open video '", path, "': ", av_err(ret), log_detail());
  s.fmt.reset(raw);

  ret = avformat_find_stream_info(s.fmt.get(), nullptr);
  if (ret < 0) fail("cannot read video '", path, "': ", av_err(ret), log_detail());

  const AVCodec* codec = nullptr;
  ret = av_find_best_stream(s.fmt.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (ret == AVERROR_STREAM_NOT_FOUND)
    fail("'", path, "' is not a video: it holds no video stream");
  if (ret == AVERROR_DECODER_NOT_FOUND || !codec) {
    int idx = -1;
    for (unsigned i = 0; i < s.fmt->nb_streams; ++i)
      if (s.fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) idx = static_cast<int>(i);
    AVCodecID id = idx >= 0 ? s.fmt->streams[idx]->codecpar->codec_id : AV_CODEC_ID_NONE;
    if (id == AV_CODEC_ID_NONE) fail("cannot decode video '", path, "': unknown video codec");
    fail("cannot decode video '", path, "': no decoder for codec '", avcodec_get_name(id),
         "' in this FFmpeg");
  }
  if (ret < 0) fail("cannot open video '", path, "': ", av_err(ret));
  s.stream = ret;
  AVStream* vs = s.fmt->streams[s.stream];

  s.dec.reset(avcodec_alloc_context3(codec));
  Y7_CHECK(s.dec, "out of memory opening video '", path, "'");
  ret = avcodec_parameters_to_context(s.dec.get(), vs->codecpar);
  if (ret < 0) fail("cannot open video '", path, "': ", av_err(ret));
  s.dec->pkt_timebase = vs->time_base;
  ret = avcodec_open2(s.dec.get(), codec, nullptr);
  if (ret < 0) fail("cannot open decoder for video '", path, "': ", av_err(ret), log_detail());

  s.width = vs->codecpar->width;
  s.height = vs->codecpar->height;
  Y7_CHECK(s.width >= 0 && s.height >= 0 && s.width <= kMaxSide && s.height <= kMaxSide,
           "video '", path, "' has unsupported size ", s.width, "x", s.height);

  double fps = valid_rate(vs->avg_frame_rate);
  if (fps == 0) fps = valid_rate(av_guess_frame_rate(s.fmt.get(), vs, nullptr));
  s.fps = fps > 0 ? fps : 30.0;

  if (vs->nb_frames > 0) {
    s.frame_count = vs->nb_frames;
  } else {
    double dur = 0;
    if (vs->duration > 0 && vs->duration != AV_NOPTS_VALUE)
      dur = static_cast<double>(vs->duration) * av_q2d(vs->time_base);
    else if (s.fmt->duration > 0 && s.fmt->duration != AV_NOPTS_VALUE)
      dur = static_cast<double>(s.fmt->duration) / AV_TIME_BASE;
    if (std::isfinite(dur) && dur > 0 && dur < 1e9) s.frame_count = std::llround(dur * s.fps);
  }
}

VideoReader::~VideoReader() = default;
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;

bool VideoReader::read(std::vector<uint8_t>& rgb, int& w, int& h) {
  Y7_CHECK(p_, "read from a moved-from VideoReader");
  return p_->read(rgb, w, h);
}
int VideoReader::width() const { return p_ ? p_->width : 0; }
int VideoReader::height() const { return p_ ? p_->height : 0; }
double VideoReader::fps() const { return p_ ? p_->fps : 0; }
int64_t VideoReader::frame_count() const { return p_ ? p_->frame_count : 0; }
int64_t VideoReader::frame_index() const { return p_ ? p_->index : 0; }
const std::string& VideoReader::path() const {
  static const std::string empty;
  return p_ ? p_->path : empty;
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

// Muxer for the output name: the common video containers by extension, MP4 otherwise. The
// temporary file has no meaningful extension, so the muxer is always named explicitly.
const char* muxer_for(const std::string& path) {
  std::string ext = lower_extension(path);
  if (ext == "mov") return "mov";
  if (ext == "mkv") return "matroska";
  if (ext == "avi") return "avi";
  return "mp4";
}

}  // namespace

struct VideoWriter::Impl {
  std::string path, tmp;
  int width = 0, height = 0;
  AVFormatContext* fmt = nullptr;  // output context (avio closed by hand)
  CodecPtr enc;
  AVStream* stream = nullptr;
  FramePtr yuv;  // encoder input, macroblock-padded
  FramePtr rgb;  // padded copy of the caller's frame (swscale reads past the row end)
  PacketPtr pkt = alloc_packet();
  SwsPtr sws;
  int64_t next_pts = 0;
  bool file_open = false;
  bool header_written = false;
  bool finished = false;
  int uncaught_at_open = std::uncaught_exceptions();

  ~Impl() { discard(); }

  // Frees everything and deletes the temporary file (no-op after a successful close()).
  void discard() noexcept {
    if (fmt) {
      if (file_open) avio_closep(&fmt->pb);
      avformat_free_context(fmt);
      fmt = nullptr;
    }
    file_open = false;
    if (!tmp.empty() && !finished) std::remove(tmp.c_str());
    finished = true;
  }

  [[noreturn]] void fail_write(const std::string& what) {
    std::string msg = "cannot write video '" + path + "': " + what;
    discard();
    throw Error(msg);
  }

  // Sends a frame (or nullptr to flush) and writes every packet the encoder has ready.
  void encode(AVFrame* f) {
    int ret = avcodec_send_frame(enc.get(), f);
    if (ret < 0) fail_write("encoder rejected a frame: " + av_err(ret) + log_detail());
    for (;;) {
      ret = avcodec_receive_packet(enc.get(), pkt.get());
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      if (ret < 0) fail_write("encoding failed: " + av_err(ret) + log_detail());
      av_packet_rescale_ts(pkt.get(), enc->time_base, stream->time_base);
      pkt->stream_index = stream->index;
      ret = av_interleaved_write_frame(fmt, pkt.get());  // takes ownership of the data
      if (ret < 0) fail_write(av_err(ret) + log_detail());
    }
  }
};

VideoWriter::VideoWriter(const std::string& path, int w, int h, double fps)
    : p_(std::make_unique<Impl>()) {
  init_ffmpeg();
  Impl& s = *p_;
  s.path = path;
  Y7_CHECK(w > 0 && h > 0, "cannot write video '", path, "': bad frame size ", w, "x", h);
  // MPEG-4 Part 2 codes the picture size in 13 bits.
  Y7_CHECK(w <= 8191 && h <= 8191, "cannot write video '", path, "': frame size ", w, "x", h,
           " exceeds the MPEG-4 limit of 8191x8191");
  Y7_CHECK(std::isfinite(fps) && fps > 0 && fps <= 1000, "cannot write video '", path,
           "': bad frame rate ", fps);
  s.width = w;
  s.height = h;
  t_last_log.clear();

  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
  Y7_CHECK(codec, "cannot write video '", path, "': this FFmpeg has no MPEG-4 encoder");
  const char* muxer = muxer_for(path);
  int ret = avformat_alloc_output_context2(&s.fmt, nullptr, muxer, nullptr);
  if (ret < 0 || !s.fmt)
    fail("cannot write video '", path, "': no '", muxer, "' muxer: ", av_err(ret));

  s.stream = avformat_new_stream(s.fmt, nullptr);
  if (!s.stream) s.fail_write("cannot add a video stream");
  s.enc.reset(avcodec_alloc_context3(codec));
  if (!s.enc) s.fail_write("out of memory");

  AVCodecContext* c = s.enc.get();
  c->width = w;
  c->height = h;
  c->pix_fmt = AV_PIX_FMT_YUV420P;
  // Frame rate as a fraction with both terms < 2^16 (MPEG-4's time increment resolution).
  AVRational rate = av_d2q(fps, 65535);
  if (rate.num <= 0 || rate.den <= 0) rate = AVRational{30, 1};
  c->framerate = rate;
  c->time_base = av_inv_q(rate);
  // Quality in the spirit of cv2's FFmpeg writer: a generous bit rate, qmin 3, GOP 12.
  double bitrate = std::min(1.5 * w * h * fps, 2.0e9);
  c->bit_rate = static_cast<int64_t>(bitrate);
  c->qmin = 3;
  c->gop_size = 12;
  c->max_b_frames = 0;
  c->sample_aspect_ratio = AVRational{1, 1};
  if (s.fmt->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  ret = avcodec_open2(c, codec, nullptr);
  if (ret < 0) s.fail_write("cannot open the MPEG-4 encoder: " + av_err(ret) + log_detail());
  ret = avcodec_parameters_from_context(s.stream->codecpar, c);
  if (ret < 0) s.fail_write(av_err(ret));
  s.stream->time_base = c->time_base;
  s.stream->avg_frame_rate = rate;
  s.stream->r_frame_rate = rate;
  s.stream->sample_aspect_ratio = c->sample_aspect_ratio;

  try {
    s.yuv = alloc_padded_frame(AV_PIX_FMT_YUV420P, w, h);
    s.rgb = alloc_padded_frame(AV_PIX_FMT_RGB24, w, h);
  } catch (const Error& e) {
    s.fail_write(e.what());
  }
  s.sws.reset(sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P, SWS_BICUBIC,
                             nullptr, nullptr, nullptr));
  if (!s.sws) s.fail_write("cannot set up RGB to YUV conversion");

  s.tmp = path + ".tmp." + std::to_string(::getpid());
  ret = avio_open2(&s.fmt->pb, file_url(s.tmp).c_str(), AVIO_FLAG_WRITE, nullptr, nullptr);
  if (ret < 0) {
    s.tmp.clear();  // nothing was created
    s.fail_write(av_err(ret));
  }
  s.file_open = true;
  ret = avformat_write_header(s.fmt, nullptr);
  if (ret < 0) s.fail_write("cannot write the header: " + av_err(ret) + log_detail());
  s.header_written = true;
  // The muxer may have changed the stream time base; packets are rescaled in encode().
  s.uncaught_at_open = std::uncaught_exceptions();
}

VideoWriter::~VideoWriter() {
  if (!p_ || p_->finished) return;
  if (std::uncaught_exceptions() > p_->uncaught_at_open) {
    p_->discard();  // unwinding from an error: leave no output behind
    return;
  }
  try {
    close();
  } catch (const std::exception&) {
    // close() already removed the temporary file; a destructor must not throw.
  }
}

VideoWriter::VideoWriter(VideoWriter&&) noexcept = default;
VideoWriter& VideoWriter::operator=(VideoWriter&& o) noexcept {
  if (this != &o) {
    if (p_ && !p_->finished) p_->discard();
    p_ = std::move(o.p_);
  }
  return *this;
}

void VideoWriter::write(const uint8_t* rgb) {
  Y7_CHECK(p_ && !p_->finished, "write to a closed VideoWriter");
  Impl& s = *p_;
  Y7_CHECK(rgb, "cannot write video '", s.path, "': null frame");
  if (!av_frame_is_writable(s.yuv.get())) {  // the encoder still holds the previous one
    try {
      s.yuv = alloc_padded_frame(AV_PIX_FMT_YUV420P, s.width, s.height);
    } catch (const Error& e) {
      s.fail_write(e.what());
    }
  }
  const int w = s.width, h = s.height, aw = align16(w), ah = align16(h);
  const size_t row = static_cast<size_t>(w) * 3;
  for (int y = 0; y < h; ++y)
    std::memcpy(s.rgb->data[0] + static_cast<ptrdiff_t>(y) * s.rgb->linesize[0], rgb + row * y,
                row);
  extend_plane(s.rgb.get(), 0, w, h, 3, aw, ah);
  int ret = sws_scale(s.sws.get(), s.rgb->data, s.rgb->linesize, 0, h, s.yuv->data,
                      s.yuv->linesize);
  if (ret != h) s.fail_write("colour conversion failed");
  extend_plane(s.yuv.get(), 0, w, h, 1, aw, ah);
  extend_plane(s.yuv.get(), 1, (w + 1) / 2, (h + 1) / 2, 1, aw / 2, ah / 2);
  extend_plane(s.yuv.get(), 2, (w + 1) / 2, (h + 1) / 2, 1, aw / 2, ah / 2);
  s.yuv->pts = s.next_pts++;
  s.encode(s.yuv.get());
}

void VideoWriter::close() {
  if (!p_ || p_->finished) return;
  Impl& s = *p_;
  s.encode(nullptr);
  int ret = av_write_trailer(s.fmt);
  if (ret < 0) s.fail_write("cannot finish the file: " + av_err(ret) + log_detail());
  ret = avio_closep(&s.fmt->pb);
  s.file_open = false;
  if (ret < 0) s.fail_write("cannot close the file: " + av_err(ret));
  if (std::rename(s.tmp.c_str(), s.path.c_str()) != 0) {
    int e = errno;
    s.fail_write(std::string("cannot rename the finished file into place: ") + std::strerror(e));
  }
  s.finished = true;
  s.discard();
}

void VideoWriter::abort() {
  if (p_) p_->discard();
}

int64_t VideoWriter::frames_written() const { return p_ ? p_->next_pts : 0; }

#endif  // Y7_HAVE_FFMPEG

}  // namespace y7::io
