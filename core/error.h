// One exception type for every user-facing failure. Its message is a single line; the CLI
// prints it as "yolo7: error: <message>" and exits 1.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace y7 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... R>
void append(std::ostringstream& os, const T& v, const R&... r) {
  os << v;
  append(os, r...);
}
}  // namespace detail

template <typename... A>
[[noreturn]] void fail(const A&... a) {
  std::ostringstream os;
  detail::append(os, a...);
  throw Error(os.str());
}

}  // namespace y7

#define Y7_CHECK(cond, ...)                 \
  do {                                      \
    if (!(cond)) ::y7::fail(__VA_ARGS__);   \
  } while (0)
