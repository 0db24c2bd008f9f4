#include "io/file_util.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "core/error.h"

namespace y7::io {

std::vector<char> read_file(const std::string& path, size_t max_bytes) {
  FILE* f = std::fopen(path.c_str(), "rb");
  Y7_CHECK(f, "cannot open '", path, "': ", std::strerror(errno));
  std::vector<char> buf;
  char tmp[1 << 16];
  size_t n;
  while ((n = std::fread(tmp, 1, sizeof(tmp), f)) > 0) {
    if (buf.size() + n > max_bytes) {
      std::fclose(f);
      fail("'", path, "' is larger than ", max_bytes, " bytes");
    }
    buf.insert(buf.end(), tmp, tmp + n);
  }
  bool err = std::ferror(f);
  std::fclose(f);
  Y7_CHECK(!err, "error reading '", path, "'");
  return buf;
}

void fault_point(const std::string& path) {
  static const char* spec = std::getenv("Y7_FAULT_KILL_WRITE");
  static int count = 0;
  if (!spec) return;
  std::string s(spec);
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return;
  std::string suffix = s.substr(0, colon);
  int n = std::atoi(s.c_str() + colon + 1);
  if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) return;
  if (++count == n) ::kill(::getpid(), SIGKILL);
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  Y7_CHECK(f, "cannot write '", path, "': ", std::strerror(errno));
  bool ok = std::fwrite(data, 1, size / 2, f) == size / 2;
  std::fflush(f);
  fault_point(path);
  ok = std::fwrite(static_cast<const char*>(data) + size / 2, 1, size - size / 2, f) == size - size / 2 && ok;
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;  // the data is on disk before the rename publishes it
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    fail("error writing '", path, "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("cannot rename to '", path, "': ", std::strerror(errno));
  }
}

void copy_file_atomic(const std::string& src, const std::string& dst) {
  std::vector<char> bytes = read_file(src);
  write_file_atomic(dst, bytes.data(), bytes.size());
}

std::string increment_path(const std::string& p, bool exist_ok) {
  namespace fs = std::filesystem;
  fs::path path(p);
  if (!fs::exists(path) || exist_ok) return p;
  std::string stem = path.filename().string();
  int n = 1;
  std::regex re("^" + std::regex_replace(stem, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") + R"((\d+))");
  if (fs::exists(path.parent_path()))
    for (auto& e : fs::directory_iterator(path.parent_path())) {
      std::smatch m;
      std::string name = e.path().filename().string();
      if (std::regex_search(name, m, re)) n = std::max(n, std::stoi(m[1]));
    }
  return (path.parent_path() / (stem + std::to_string(n + 1))).string();
}

}  // namespace y7::io
