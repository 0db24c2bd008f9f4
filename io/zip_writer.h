// Writer for uncompressed ("stored") zip archives in the layout torch.save produces: every entry's
// data starts on a 64-byte boundary (padding in a local-header extra field), CRC-32 filled in,
// zip64 records when an entry, offset or the entry count exceeds the classic limits. The archive is
// written to "<path>.tmp.<pid>" and renamed over `path` by finish(), so readers never see a partial
// file; a writer destroyed before finish() removes its temporary file.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace y7::io {

uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

class ZipWriter {
 public:
  // zip64_limit: sizes/offsets at or above it use zip64 fields (0xffffffff in a standard archive;
  // lower values exist so that tests can exercise the zip64 layout with small files).
  explicit ZipWriter(const std::string& path, size_t align = 64, uint64_t zip64_limit = 0xffffffffULL);
  ~ZipWriter();
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;

  // Adds one stored entry (names must be unique, at most 65535 bytes).
  void add(const std::string& name, const void* data, uint64_t size);
  // Writes the central directory and end records, flushes, and renames into place.
  void finish();

 private:
  struct Entry {
    std::string name;
    uint64_t size, offset;
    uint32_t crc;
  };
  void write(const void* p, size_t n);
  std::string path_, tmp_;
  size_t align_;
  uint64_t limit_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
  std::vector<Entry> entries_;
  bool done_ = false;
};

}  // namespace y7::io
