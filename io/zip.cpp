#include "io/zip.h"

#include <cstring>

#include "core/error.h"

namespace y7::io {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEocdSize = 22, kZip64EocdSize = 56, kZip64LocatorSize = 20;
constexpr size_t kCentralSize = 46, kLocalSize = 30;
constexpr uint32_t kSat32 = 0xFFFFFFFFu;
constexpr uint16_t kSat16 = 0xFFFFu;

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

// Printable form of an entry name for error messages (names come from the file).
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 32 && u != 127) out += c;
    else out += '?';
  }
  if (s.size() > 200) out += "...";
  return out;
}

// Values of a zip64 extended-information extra field (id 0x0001). Only fields whose 32/16-bit
// counterpart is saturated are present, in this order.
struct Zip64Fields {
  uint64_t* size;
  uint64_t* csize;
  uint64_t* offset;
  bool need_size, need_csize, need_offset, need_disk;
};

void parse_extra(const uint8_t* p, size_t len, Zip64Fields z, const std::string& where) {
  bool found = false;
  size_t q = 0;
  while (q + 4 <= len) {
    uint16_t id = rd16(p + q), sz = rd16(p + q + 2);
    Y7_CHECK(sz <= len - q - 4, where, ": malformed extra field");
    if (id == 0x0001 && !found) {
      found = true;
      const uint8_t* f = p + q + 4;
      size_t avail = sz, at = 0;
      auto take64 = [&](uint64_t* dst) {
        Y7_CHECK(avail - at >= 8, where, ": zip64 extra field too short");
        *dst = rd64(f + at);
        at += 8;
      };
      if (z.need_size) take64(z.size);
      if (z.need_csize) take64(z.csize);
      if (z.need_offset) take64(z.offset);
      if (z.need_disk) {
        Y7_CHECK(avail - at >= 4, where, ": zip64 extra field too short");
        Y7_CHECK(rd32(f + at) == 0, where, ": multi-disk zip archives are not supported");
      }
    }
    q += 4 + size_t(sz);
  }
  Y7_CHECK(found || !(z.need_size || z.need_csize || z.need_offset || z.need_disk), where,
           ": saturated size/offset without a zip64 extra field");
}

}  // namespace

ZipArchive ZipArchive::open(const std::string& path) { return from_source(MappedFile::open(path)); }

ZipArchive ZipArchive::from_memory(const void* data, size_t size, const std::string& name) {
  Y7_CHECK(size > 0, "'", name, "' is empty");
  return from_source(ByteBuffer::copy_of(data, size, name));
}

ZipArchive ZipArchive::from_source(std::shared_ptr<const ByteSource> src) {
  Y7_CHECK(src != nullptr, "zip: null source");
  ZipArchive z;
  z.src_ = std::move(src);
  z.parse();
  return z;
}

void ZipArchive::parse() {
  const uint8_t* d = src_->data();
  const size_t n = src_->size();
  const std::string& fname = src_->name();
  const bool local_magic = n >= 4 && rd32(d) == kLocalSig;
  Y7_CHECK(n > 0, "'", fname, "' is empty");
  if (!local_magic) {
    if (n >= 2 && d[0] == 0x80 && d[1] <= 5)
      fail("'", fname, "' is not a zip archive (legacy torch.save pickle format is not supported; re-save it with torch >= 1.6)");
    bool eocd_only = n >= 4 && rd32(d) == kEocdSig;  // an empty archive
    Y7_CHECK(eocd_only, "'", fname, "' is not a zip archive (a torch.save checkpoint was expected)");
  }

  // ---- end of central directory: the last signature whose comment fits the file
  Y7_CHECK(n >= kEocdSize, "'", fname, "': truncated zip archive (no end of central directory record)");
  size_t lowest = n - kEocdSize > 0xFFFF ? n - kEocdSize - 0xFFFF : 0;
  size_t eocd = SIZE_MAX;
  for (size_t pos = n - kEocdSize + 1; pos-- > lowest;) {
    if (rd32(d + pos) == kEocdSig && pos + kEocdSize + rd16(d + pos + 20) <= n) {
      eocd = pos;
      break;
    }
  }
  Y7_CHECK(eocd != SIZE_MAX, "'", fname, "': truncated zip archive (no end of central directory record)");
  const uint8_t* e = d + eocd;
  uint64_t disk = rd16(e + 4), cd_disk = rd16(e + 6), count_disk = rd16(e + 8), count = rd16(e + 10);
  uint64_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
  size_t cd_limit = eocd;  // the central directory must end before this

  bool has_locator = eocd >= kZip64LocatorSize && rd32(d + eocd - kZip64LocatorSize) == kZip64LocatorSig;
  if (has_locator) {
    const uint8_t* l = d + eocd - kZip64LocatorSize;
    uint64_t rec = rd64(l + 8);
    Y7_CHECK(rd32(l + 4) == 0 && rd32(l + 16) <= 1, "'", fname, "': multi-disk zip archives are not supported");
    size_t loc_pos = eocd - kZip64LocatorSize;
    Y7_CHECK(rec <= loc_pos && loc_pos - rec >= kZip64EocdSize, "'", fname,
             "': zip64 end of central directory record (offset ", rec, ") lies outside the file");
    const uint8_t* r = d + rec;
    Y7_CHECK(rd32(r) == kZip64EocdSig, "'", fname, "': bad zip64 end of central directory record");
    uint64_t z_disk = rd32(r + 16), z_cd_disk = rd32(r + 20), z_count_disk = rd64(r + 24), z_count = rd64(r + 32);
    uint64_t z_cd_size = rd64(r + 40), z_cd_off = rd64(r + 48);
    auto agree = [&](uint64_t v32, uint64_t v64, uint64_t sat) { return v32 == sat || v32 == v64; };
    Y7_CHECK(agree(disk, z_disk, kSat16) && agree(cd_disk, z_cd_disk, kSat16) &&
                 agree(count_disk, z_count_disk, kSat16) && agree(count, z_count, kSat16) &&
                 agree(cd_size, z_cd_size, kSat32) && agree(cd_off, z_cd_off, kSat32),
             "'", fname, "': zip64 end of central directory disagrees with the end of central directory");
    disk = z_disk, cd_disk = z_cd_disk, count_disk = z_count_disk, count = z_count;
    cd_size = z_cd_size, cd_off = z_cd_off;
    cd_limit = size_t(rec);
  } else {
    Y7_CHECK(cd_size != kSat32 && cd_off != kSat32, "'", fname,
             "': zip64 archive without a zip64 end of central directory locator");
  }
  Y7_CHECK(disk == 0 && cd_disk == 0, "'", fname, "': multi-disk zip archives are not supported");
  Y7_CHECK(count_disk == count, "'", fname, "': multi-disk zip archives are not supported");
  Y7_CHECK(cd_off <= cd_limit && cd_size <= cd_limit - cd_off, "'", fname, "': zip central directory (offset ",
           cd_off, ", size ", cd_size, ") lies outside the file");
  Y7_CHECK(count <= cd_size / kCentralSize, "'", fname, "': zip central directory declares ", count,
           " entries but holds only ", cd_size, " bytes");

  // ---- central directory entries
  entries_.reserve(size_t(count));
  const size_t cd_end = size_t(cd_off + cd_size);
  size_t pos = size_t(cd_off);
  for (uint64_t i = 0; i < count; ++i) {
    Y7_CHECK(cd_end - pos >= kCentralSize && rd32(d + pos) == kCentralSig, "'", fname,
             "': bad zip central directory (entry ", i, ")");
    const uint8_t* c = d + pos;
    ZipEntry z;
    z.flags = rd16(c + 8);
    z.method = rd16(c + 10);
    uint32_t csize32 = rd32(c + 20), size32 = rd32(c + 24);
    size_t nlen = rd16(c + 28), elen = rd16(c + 30), clen = rd16(c + 32);
    uint16_t disk_start = rd16(c + 34);
    uint32_t off32 = rd32(c + 42);
    Y7_CHECK(cd_end - pos - kCentralSize >= nlen + elen + clen, "'", fname, "': bad zip central directory (entry ", i,
             " overruns it)");
    z.name.assign(reinterpret_cast<const char*>(c + kCentralSize), nlen);
    std::string where = "'" + fname + "': zip entry '" + printable(z.name) + "'";
    Y7_CHECK(!z.name.empty(), "'", fname, "': zip entry ", i, " has an empty name");
    z.size = size32, z.compressed_size = csize32, z.header_offset = off32;
    parse_extra(c + kCentralSize + nlen, elen,
                Zip64Fields{&z.size, &z.compressed_size, &z.header_offset, size32 == kSat32, csize32 == kSat32,
                            off32 == kSat32, disk_start == kSat16},
                where);
    Y7_CHECK(disk_start == 0 || disk_start == kSat16, where, ": multi-disk zip archives are not supported");
    Y7_CHECK(!(z.flags & 1), where, " is encrypted");
    pos += kCentralSize + nlen + elen + clen;

    // ---- local header
    Y7_CHECK(z.header_offset <= n && n - z.header_offset >= kLocalSize && rd32(d + z.header_offset) == kLocalSig,
             where, ": bad local header (offset ", z.header_offset, ")");
    const uint8_t* h = d + z.header_offset;
    uint16_t lflags = rd16(h + 6), lmethod = rd16(h + 8);
    uint32_t lcsize32 = rd32(h + 18), lsize32 = rd32(h + 22);
    size_t lnlen = rd16(h + 26), lelen = rd16(h + 28);
    Y7_CHECK(n - z.header_offset - kLocalSize >= lnlen + lelen, where, ": local header overruns the file");
    std::string_view lname(reinterpret_cast<const char*>(h + kLocalSize), lnlen);
    Y7_CHECK(lname == z.name, where, ": local header names '", printable(lname), "'");
    Y7_CHECK(lmethod == z.method, where, ": local header method ", lmethod, " differs from the central directory's ",
             z.method);
    if (!(lflags & 8)) {  // sizes are in the local header (no data descriptor): they must agree
      uint64_t lsize = lsize32, lcsize = lcsize32, dummy = 0;
      parse_extra(h + kLocalSize + lnlen, lelen,
                  Zip64Fields{&lsize, &lcsize, &dummy, lsize32 == kSat32, lcsize32 == kSat32, false, false}, where);
      Y7_CHECK(lsize == z.size && lcsize == z.compressed_size, where,
               ": local header sizes differ from the central directory");
    }
    z.data_offset = z.header_offset + kLocalSize + lnlen + lelen;
    Y7_CHECK(z.compressed_size <= n - z.data_offset, where, ": data (offset ", z.data_offset, ", size ",
             z.compressed_size, ") lies outside the file");
    Y7_CHECK(z.method != 0 || z.compressed_size == z.size, where, ": stored entry with compressed size ",
             z.compressed_size, " != size ", z.size);
    auto [it, inserted] = index_.emplace(z.name, entries_.size());
    Y7_CHECK(inserted, "'", fname, "': duplicate zip entry '", printable(z.name), "'");
    entries_.push_back(std::move(z));
  }
}

const ZipEntry* ZipArchive::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const ZipEntry& ZipArchive::at(std::string_view name) const {
  const ZipEntry* e = find(name);
  Y7_CHECK(e, "'", src_->name(), "' has no entry '", printable(name), "'");
  return *e;
}

std::string_view ZipArchive::bytes(const ZipEntry& e) const {
  Y7_CHECK(e.method == 0, "'", src_->name(), "': entry '", printable(e.name), "' is compressed (method ", e.method,
           "); only stored entries are supported");
  return std::string_view(reinterpret_cast<const char*>(src_->data() + e.data_offset), size_t(e.size));
}

std::shared_ptr<Storage> ZipArchive::storage(const ZipEntry& e, uint64_t nbytes, size_t align) const {
  std::string_view b = bytes(e);
  Y7_CHECK(nbytes <= b.size(), "'", src_->name(), "': entry '", printable(e.name), "' holds ", b.size(),
           " bytes, ", nbytes, " needed");
  void* p = const_cast<char*>(b.data());
  if (align > 1 && reinterpret_cast<uintptr_t>(p) % align != 0) {
    auto s = Storage::allocate(size_t(nbytes));
    if (nbytes) std::memcpy(s->data(), p, size_t(nbytes));
    return s;
  }
  return Storage::wrap(p, size_t(nbytes), src_);
}

TorchArchiveLayout find_torch_layout(const ZipArchive& zip) {
  TorchArchiveLayout out;
  static constexpr std::string_view kPkl = "data.pkl";
  int found = 0;
  for (auto& e : zip.entries()) {
    std::string_view nm = e.name;
    if (nm.size() < kPkl.size() || nm.substr(nm.size() - kPkl.size()) != kPkl) continue;
    std::string_view prefix = nm.substr(0, nm.size() - kPkl.size());
    bool top = prefix.empty() || (prefix.back() == '/' && prefix.find('/') == prefix.size() - 1);
    if (!top) continue;
    ++found;
    out.prefix = std::string(prefix);
    out.pickle = &e;
  }
  Y7_CHECK(found > 0, "'", zip.name(), "' is not a torch checkpoint: no data.pkl entry in the archive");
  Y7_CHECK(found == 1, "'", zip.name(), "' is not a torch checkpoint: ", found, " data.pkl entries in the archive");
  return out;
}

}  // namespace y7::io
