// Read-only view of a whole file through mmap (copy-on-write private mapping: writes through a
// tensor view stay in this process and never reach the file). A ByteBuffer is the in-memory
// equivalent; both are handed out as shared_ptr so that tensors can keep them alive.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace y7::io {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& name() const { return name_; }

 protected:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
};

// mmap of a regular file. Throws y7::Error for missing files, directories, non-regular files and
// empty files ("... is empty").
class MappedFile final : public ByteSource {
 public:
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile() override;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

 private:
  MappedFile() = default;
};

// A private 64-byte aligned copy of a memory buffer.
class ByteBuffer final : public ByteSource {
 public:
  static std::shared_ptr<const ByteBuffer> copy_of(const void* data, size_t size, std::string name = "<memory>");
  ~ByteBuffer() override;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;

 private:
  ByteBuffer() = default;
};

}  // namespace y7::io
