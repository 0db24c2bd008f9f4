// Reader for the zip archives that torch.save writes: stored (uncompressed) entries, zip64
// end-of-central-directory record/locator and zip64 extra fields. Entry data are views into the
// mmap'ed file (no copies). Every offset and size is validated against the file; any malformed
// structure throws y7::Error with a one-line message.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/storage.h"
#include "io/mmap_file.h"

namespace y7::io {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;          // 0 = stored; anything else is rejected when the data is accessed
  uint16_t flags = 0;
  uint64_t size = 0;            // uncompressed size
  uint64_t compressed_size = 0;
  uint64_t header_offset = 0;   // local file header
  uint64_t data_offset = 0;     // first byte of the entry data
};

class ZipArchive {
 public:
  // mmap the file and parse its central directory.
  static ZipArchive open(const std::string& path);
  // Parse an archive held in memory (the bytes are copied once into an aligned private buffer).
  static ZipArchive from_memory(const void* data, size_t size, const std::string& name = "<memory>");
  // Parse an existing source (kept alive by the archive and by every storage handed out).
  static ZipArchive from_source(std::shared_ptr<const ByteSource> src);

  const std::string& name() const { return src_->name(); }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;  // nullptr when absent
  const ZipEntry& at(std::string_view name) const;    // throws "... has no entry 'x'"

  // The entry's bytes inside the mapping. Throws for compressed entries.
  std::string_view bytes(const ZipEntry& e) const;
  // A Storage over the entry's bytes (or over its first `nbytes`, which must fit) that keeps the
  // mapping alive. Data not aligned to `align` bytes is copied into fresh aligned memory instead.
  std::shared_ptr<Storage> storage(const ZipEntry& e, uint64_t nbytes, size_t align = 1) const;

  const std::shared_ptr<const ByteSource>& source() const { return src_; }

 private:
  void parse();
  std::shared_ptr<const ByteSource> src_;
  std::vector<ZipEntry> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

// The layout of a torch.save archive: "<prefix>data.pkl" plus "<prefix>data/<key>" storages, where
// prefix is the archive's top folder ("archive/", "<name>/") or empty.
struct TorchArchiveLayout {
  std::string prefix;
  const ZipEntry* pickle = nullptr;
};
TorchArchiveLayout find_torch_layout(const ZipArchive& zip);

}  // namespace y7::io
