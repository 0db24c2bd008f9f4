#include "io/mmap_file.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

namespace y7::io {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  Y7_CHECK(fd >= 0, "cannot open '", path, "': ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot stat '", path, "': ", std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("'", path, "' is a directory, not a file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("'", path, "' is not a regular file");
  }
  if (st.st_size <= 0) {
    ::close(fd);
    fail("'", path, "' is empty");
  }
  size_t size = size_t(st.st_size);
  // MAP_PRIVATE + PROT_WRITE: copy-on-write, so in-place edits of tensor views never touch the file.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  Y7_CHECK(p != MAP_FAILED, "cannot map '", path, "': ", std::strerror(e));
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->data_ = static_cast<uint8_t*>(p);
  m->size_ = size;
  m->name_ = path;
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

std::shared_ptr<const ByteBuffer> ByteBuffer::copy_of(const void* data, size_t size, std::string name) {
  std::shared_ptr<ByteBuffer> b(new ByteBuffer());
  size_t padded = (size + 63) / 64 * 64;
  if (padded == 0) padded = 64;
  b->data_ = static_cast<uint8_t*>(std::aligned_alloc(64, padded));
  if (!b->data_) fail("out of memory copying ", size, " bytes");
  if (size) std::memcpy(b->data_, data, size);
  b->size_ = size;
  b->name_ = std::move(name);
  return b;
}

ByteBuffer::~ByteBuffer() { std::free(data_); }

}  // namespace y7::io
