// Video input/output for `yolo7 detect`, through the FFmpeg libraries (libavformat, libavcodec,
// libavutil, libswscale). Mirrors what upstream detect.py does with cv2.VideoCapture /
// cv2.VideoWriter(fourcc 'mp4v'): frames are read one by one, annotated, and written back at
// the input's size and frame rate.
//
// Built without FFmpeg (Y7_HAVE_FFMPEG undefined) is_video_path() still works, and opening a
// reader or writer throws a y7::Error saying how to enable video support.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace y7::io {

// True when `path` ends in one of upstream's video suffixes (mov avi mp4 mpg mpeg m4v wmv mkv),
// compared case-insensitively. Only the name is looked at, never the file.
bool is_video_path(const std::string& path);

// True when this build can read and write videos.
bool video_supported();

// Decodes the best video stream of a file into interleaved RGB8 frames (R, G, B per pixel,
// rows tightly packed, no padding). Colour conversion follows cv2's FFmpeg backend: swscale,
// bicubic, default (BT.601) matrix, range from the pixel format.
// Errors (missing file, not a video, undecodable stream) throw a one-line y7::Error.
class VideoReader {
 public:
  explicit VideoReader(const std::string& path);
  ~VideoReader();
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  // Next frame into `rgb` (resized to w*h*3) with its size; false at the end of the stream.
  // Packets the decoder rejects are skipped (as cv2 does); a stream where nothing decodes
  // throws.
  bool read(std::vector<uint8_t>& rgb, int& w, int& h);

  int width() const;   // coded size of the stream (frames may change size mid-stream)
  int height() const;
  double fps() const;  // average frame rate; 30 when the file does not say
  int64_t frame_count() const;  // container's frame count or duration*fps estimate; may be 0
  int64_t frame_index() const;  // 1-based index of the last frame read (0 before the first)
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

// Encodes RGB8 frames (w*h*3 bytes each, tightly packed) as MPEG-4 Part 2 ('mp4v', like cv2's
// fourcc 'mp4v') in YUV 4:2:0. The container follows the output name: .mov, .mkv, .avi get
// QuickTime, Matroska and AVI; every other name gets MP4. Output goes to "<path>.tmp.<pid>"
// and is renamed to `path` by close(), so a crash never leaves a half-written file at `path`.
// The destructor closes the file too, unless it runs while an exception unwinds the stack, in
// which case the temporary file is deleted and `path` is left untouched.
class VideoWriter {
 public:
  VideoWriter(const std::string& path, int w, int h, double fps);
  ~VideoWriter();
  VideoWriter(VideoWriter&&) noexcept;
  VideoWriter& operator=(VideoWriter&&) noexcept;
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  void write(const uint8_t* rgb);  // one frame of w*h*3 bytes
  void close();                    // flush the encoder, write the trailer, rename into place
  void abort();                    // drop everything written so far; `path` is not touched
  int64_t frames_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

}  // namespace y7::io
