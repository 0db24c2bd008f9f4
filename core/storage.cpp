#include "core/storage.h"

#include <cstdlib>
#include <new>

#include "core/error.h"

namespace y7 {

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  Y7_CHECK(device.is_cpu(), "Storage::allocate: device ", device.str(), " needs the CUDA backend");
  std::shared_ptr<Storage> s(new Storage());
  size_t padded = (nbytes + 63) / 64 * 64;
  if (padded == 0) padded = 64;
  s->data_ = std::aligned_alloc(64, padded);
  if (!s->data_) fail("out of memory allocating ", nbytes, " bytes");
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->owned_ = true;
  return s;
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, std::shared_ptr<const void> owner,
                                       Device device) {
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->owner_ = std::move(owner);
  return s;
}

Storage::~Storage() {
  if (owned_) std::free(data_);
}

}  // namespace y7
