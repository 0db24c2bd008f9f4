// Stored-entry zip writer (see zip_writer.h).
#include "io/zip_writer.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/file_util.h"

namespace y7::io {

namespace {
const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> r{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      r[i] = c;
    }
    return r;
  }();
  return t;
}

struct Buf {
  std::string b;
  void u16(uint64_t v) { for (int i = 0; i < 2; ++i) b.push_back(char(uint8_t(v >> (8 * i)))); }
  void u32(uint64_t v) { for (int i = 0; i < 4; ++i) b.push_back(char(uint8_t(v >> (8 * i)))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(char(uint8_t(v >> (8 * i)))); }
  void str(const std::string& s) { b += s; }
};

constexpr uint64_t k32 = 0xffffffffULL;
}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  const auto& t = crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

ZipWriter::ZipWriter(const std::string& path, size_t align, uint64_t zip64_limit)
    : path_(path), align_(align ? align : 1), limit_(std::min<uint64_t>(zip64_limit, k32)) {
  tmp_ = path + ".tmp." + std::to_string(::getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  Y7_CHECK(f_, path, ": cannot create '", tmp_, "': ", std::strerror(errno));
}

ZipWriter::~ZipWriter() {
  if (f_) std::fclose(f_);
  if (!done_) std::remove(tmp_.c_str());
}

void ZipWriter::write(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f_) != n) fail(path_, ": write failed: ", std::strerror(errno));
  pos_ += n;
}

void ZipWriter::add(const std::string& name, const void* data, uint64_t size) {
  Y7_CHECK(!done_, "zip writer: add() after finish()");
  Y7_CHECK(!name.empty() && name.size() < 0xffff, "zip writer: bad entry name");
  for (auto& e : entries_) Y7_CHECK(e.name != name, "zip writer: duplicate entry '", name, "'");
  uint32_t crc = crc32(data, size_t(size));
  bool z64 = size >= limit_;
  Buf h;
  h.u32(0x04034b50);
  h.u16(z64 ? 45 : 20);  // version needed
  h.u16(0x0800);         // UTF-8 names
  h.u16(0);              // stored
  h.u16(0), h.u16(0x21); // time 00:00, date 1980-01-01
  h.u32(crc);
  h.u32(z64 ? k32 : size);
  h.u32(z64 ? k32 : size);
  h.u16(name.size());
  size_t extra_fixed = z64 ? 20 : 0;
  size_t base = pos_ + 30 + name.size() + extra_fixed;
  size_t pad = (align_ - (base + 4) % align_) % align_;  // padding field: 4-byte header + pad bytes
  h.u16(extra_fixed + 4 + pad);
  h.str(name);
  if (z64) {
    h.u16(0x0001), h.u16(16);
    h.u64(size), h.u64(size);
  }
  h.u16(0x4246), h.u16(pad);  // "FB" padding, as torch's writer uses
  h.b.append(pad, 'Z');
  uint64_t offset = pos_;
  write(h.b.data(), h.b.size());
  write(data, size_t(size));
  entries_.push_back({name, size, offset, crc});
}

void ZipWriter::finish() {
  Y7_CHECK(!done_, "zip writer: finish() twice");
  uint64_t cd_start = pos_;
  for (auto& e : entries_) {
    bool zs = e.size >= limit_, zo = e.offset >= limit_;
    Buf c;
    c.u32(0x02014b50);
    c.u16(45 | (3 << 8));  // made by: unix, 4.5
    c.u16(zs || zo ? 45 : 20);
    c.u16(0x0800), c.u16(0);
    c.u16(0), c.u16(0x21);
    c.u32(e.crc);
    c.u32(zs ? k32 : e.size);
    c.u32(zs ? k32 : e.size);
    c.u16(e.name.size());
    size_t ex = (zs || zo) ? 4 + (zs ? 16 : 0) + (zo ? 8 : 0) : 0;
    c.u16(ex);
    c.u16(0), c.u16(0), c.u16(0);  // comment, disk, internal attrs
    c.u32(0100644u << 16);          // external attrs: regular file rw-r--r--
    c.u32(zo ? k32 : e.offset);
    c.str(e.name);
    if (ex) {
      c.u16(0x0001), c.u16(ex - 4);
      if (zs) c.u64(e.size), c.u64(e.size);
      if (zo) c.u64(e.offset);
    }
    write(c.b.data(), c.b.size());
  }
  uint64_t cd_size = pos_ - cd_start, n = entries_.size();
  bool z64 = n >= 0xffff || cd_start >= limit_ || cd_size >= limit_;
  Buf t;
  if (z64) {
    uint64_t rec = pos_;
    t.u32(0x06064b50);
    t.u64(44);
    t.u16(45 | (3 << 8)), t.u16(45);
    t.u32(0), t.u32(0);
    t.u64(n), t.u64(n);
    t.u64(cd_size), t.u64(cd_start);
    t.u32(0x07064b50);
    t.u32(0);
    t.u64(rec);
    t.u32(1);
  }
  std::fflush(f_);
  fault_point(path_);  // test hook (io/file_util.h): a kill here leaves only the temp file
  t.u32(0x06054b50);
  t.u16(0), t.u16(0);
  t.u16(z64 ? 0xffff : n), t.u16(z64 ? 0xffff : n);
  t.u32(z64 ? k32 : cd_size);
  t.u32(z64 ? k32 : cd_start);
  t.u16(0);
  write(t.b.data(), t.b.size());
  bool ok = std::fflush(f_) == 0;
  ok = ok && ::fsync(fileno(f_)) == 0;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  Y7_CHECK(ok, path_, ": write failed: ", std::strerror(errno));
  Y7_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, path_, ": cannot rename '", tmp_, "': ", std::strerror(errno));
  done_ = true;
}

}  // namespace y7::io
