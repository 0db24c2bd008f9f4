// The JSON text our writers share (results.json, quant_info.json): a string as a JSON literal.
#pragma once
#include <string>

namespace y7::io {

// s as a quoted JSON string: '"' and '\' escaped, control characters as \u00XX, other bytes
// (UTF-8 included) as they are.
std::string json_quote(const std::string& s);

}  // namespace y7::io
