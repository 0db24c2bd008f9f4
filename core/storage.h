// A reference-counted byte buffer. CPU buffers are 64-byte aligned; a storage may also wrap memory
// owned by someone else (an mmap'ed checkpoint) and keep that owner alive.
#pragma once
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace y7 {

class Storage {
 public:
  // Fresh, uninitialised, 64-byte aligned CPU memory.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = Device::cpu());
  // Wraps external memory; `owner` is kept alive as long as the storage.
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, std::shared_ptr<const void> owner,
                                       Device device = Device::cpu());
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool owned_ = false;
  std::shared_ptr<const void> owner_;
};

}  // namespace y7
