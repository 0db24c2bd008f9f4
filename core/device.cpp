#include "core/device.h"

#include "core/error.h"

namespace y7 {

Device parse_device(const std::string& s) {
  if (s.empty() || s == "cpu" || s == "CPU") return Device::cpu();
  std::string first = s.substr(0, s.find(','));
  for (char c : first) Y7_CHECK(c >= '0' && c <= '9', "invalid --device '", s, "' (use cpu, 0 or 0,1)");
  Y7_CHECK(!first.empty() && first.size() < 4, "invalid --device '", s, "'");
  return Device::cuda(std::stoi(first));
}

}  // namespace y7
