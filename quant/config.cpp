// quant_info.json writer/reader (a small JSON subset parser of our own) and the graph identity.
#include "quant/config.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/error.h"
#include "io/file_util.h"
#include "io/json.h"

namespace y7::quant {

int QuantConfig::output_fp(const std::string& node) const {
  auto it = output.find(node);
  Y7_CHECK(it != output.end(), "quant config: no output fix_point for node '", node, "'");
  return it->second;
}
int QuantConfig::weight_fp(const std::string& conv) const {
  auto it = param.find(conv + ".weight");
  Y7_CHECK(it != param.end(), "quant config: no weight fix_point for conv '", conv, "'");
  return it->second;
}
int QuantConfig::bias_fp(const std::string& conv) const {
  auto it = param.find(conv + ".bias");
  Y7_CHECK(it != param.end(), "quant config: no bias fix_point for conv '", conv, "'");
  return it->second;
}

// ---- JSON
namespace {

struct JVal {
  enum Kind { Null, Bool, Num, Str, Arr, Obj } kind = Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<JVal> arr;
  std::vector<std::pair<std::string, JVal>> obj;
  const JVal* get(const std::string& k) const {
    for (auto& [key, v] : obj)
      if (key == k) return &v;
    return nullptr;
  }
};

class Parser {
 public:
  Parser(const std::string& t, const std::string& what) : s_(t), what_(what) {}
  JVal parse() {
    JVal v = value(0);
    ws();
    if (i_ != s_.size()) err("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void err(const char* m) { fail(what_, ": malformed JSON (", m, " at offset ", i_, ")"); }
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  JVal value(int depth) {
    if (depth > 64) err("nesting too deep");
    ws();
    if (i_ >= s_.size()) err("unexpected end");
    JVal v;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = JVal::Obj;
      if (eat('}')) return v;
      do {
        ws();
        std::string k = string();
        if (!eat(':')) err("expected ':'");
        v.obj.emplace_back(std::move(k), value(depth + 1));
      } while (eat(','));
      if (!eat('}')) err("expected '}'");
    } else if (c == '[') {
      ++i_;
      v.kind = JVal::Arr;
      if (eat(']')) return v;
      do v.arr.push_back(value(depth + 1));
      while (eat(','));
      if (!eat(']')) err("expected ']'");
    } else if (c == '"') {
      v.kind = JVal::Str, v.str = string();
    } else if (s_.compare(i_, 4, "true") == 0) {
      v.kind = JVal::Bool, v.b = true, i_ += 4;
    } else if (s_.compare(i_, 5, "false") == 0) {
      v.kind = JVal::Bool, i_ += 5;
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i_ + 1;
      while (j < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[j])) || std::strchr(".eE+-", s_[j]))) ++j;
      const std::string t = s_.substr(i_, j - i_);
      char* end = nullptr;
      v.kind = JVal::Num, v.num = std::strtod(t.c_str(), &end);
      if (end != t.c_str() + t.size()) err("bad number");
      i_ = j;
    } else {
      err("unexpected character");
    }
    return v;
  }
  std::string string() {
    if (i_ >= s_.size() || s_[i_] != '"') err("expected a string");
    ++i_;
    std::string out;
    while (true) {
      if (i_ >= s_.size()) err("unterminated string");
      char c = s_[i_++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) err("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) err("unterminated escape");
      c = s_[i_++];
      switch (c) {
        case '"': case '\\': case '/': out += c; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) err("bad \\u escape");
          unsigned cp = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            if (!std::isxdigit(static_cast<unsigned char>(h))) err("bad \\u escape");
            cp = cp * 16 + unsigned(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          if (cp < 0x80) out += char(cp);
          else if (cp < 0x800) out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
          else out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
          break;
        }
        default: err("bad escape");
      }
    }
    return out;
  }
  const std::string& s_;
  std::string what_;
  size_t i_ = 0;
};

int as_int(const JVal& v, const std::string& what, const std::string& key, int lo, int hi) {
  Y7_CHECK(v.kind == JVal::Num && v.num == double(int64_t(v.num)) && v.num >= lo && v.num <= hi, what, ": '", key,
           "' must be an integer in ", lo, "..", hi);
  return int(v.num);
}

const JVal& need(const JVal& o, const std::string& key, JVal::Kind k, const std::string& what) {
  const JVal* v = o.get(key);
  Y7_CHECK(v, what, ": missing '", key, "'");
  Y7_CHECK(v->kind == k, what, ": '", key, "' has the wrong type");
  return *v;
}

void read_table(const JVal& root, const std::string& key, int bw, std::map<std::string, int>& out,
                const std::string& what) {
  const JVal& t = need(root, key, JVal::Obj, what);
  for (auto& [name, v] : t.obj) {
    // [bit_width, fix_point] as NNDCT writes it
    Y7_CHECK(v.kind == JVal::Arr && v.arr.size() == 2, what, ": ", key, " entry '", name,
             "' must be [bit_width, fix_point]");
    const int b = as_int(v.arr[0], what, key + "." + name + "[0]", 2, 16);
    Y7_CHECK(b == bw, what, ": ", key, " entry '", name, "' has bit width ", b, " (config bit_width ", bw, ")");
    out[name] = as_int(v.arr[1], what, key + "." + name + "[1]", -64, 64);
    Y7_CHECK(!name.empty(), what, ": empty tensor name in '", key, "'");
  }
}

}  // namespace

std::string config_to_json(const QuantConfig& c) {
  std::string s = "{\n";
  s += "  \"format\": \"yolo7 quant_info\",\n";
  s += "  \"version\": " + std::to_string(c.version) + ",\n";
  s += "  \"graph_md5\": " + io::json_quote(c.graph_hash) + ",\n";
  s += "  \"bit_width\": " + std::to_string(c.bit_width) + ",\n";
  s += std::string("  \"nndct_convert_silu_to_hswish\": ") + (c.convert_silu_to_hswish ? "true" : "false") + ",\n";
  s += std::string("  \"nndct_convert_sigmoid_to_hsigmoid\": ") + (c.convert_sigmoid_to_hsigmoid ? "true" : "false") + ",\n";
  s += "  \"img_size\": " + std::to_string(c.img_size) + ",\n";
  s += "  \"calib_batches\": " + std::to_string(c.calib_batches) + ",\n";
  s += "  \"calib_images\": " + std::to_string(c.calib_images) + ",\n";
  auto table = [&](const char* key, const std::map<std::string, int>& m, bool last) {
    s += std::string("  \"") + key + "\": {";
    bool first = true;
    for (auto& [k, v] : m) {
      s += first ? "\n" : ",\n";
      s += "    " + io::json_quote(k) + ": [" + std::to_string(c.bit_width) + ", " + std::to_string(v) + "]";
      first = false;
    }
    s += first ? "}" : "\n  }";
    s += last ? "\n" : ",\n";
  };
  table("param", c.param, false);
  table("output", c.output, false);
  s += "  \"bias_corr\": {";
  bool first = true;
  for (auto& [k, v] : c.bias_corr) {
    s += first ? "\n    " : ",\n    ";
    s += io::json_quote(k) + ": [";
    for (size_t i = 0; i < v.size(); ++i) {
      char b[32];
      std::snprintf(b, sizeof b, "%.9g", double(v[i]));  // float32 round trip
      s += (i ? ", " : "") + std::string(b);
    }
    s += "]";
    first = false;
  }
  s += first ? "},\n" : "\n  },\n";
  s += "  \"input\": {}\n";
  return s + "}\n";
}

QuantConfig config_from_json(const std::string& text, const std::string& what) {
  JVal root = Parser(text, what).parse();
  Y7_CHECK(root.kind == JVal::Obj, what, ": not a JSON object");
  const JVal* fmt = root.get("format");
  Y7_CHECK(fmt && fmt->kind == JVal::Str && fmt->str == "yolo7 quant_info", what,
           ": not a yolo7 quant_info.json (no \"format\": \"yolo7 quant_info\")");
  QuantConfig c;
  c.version = as_int(need(root, "version", JVal::Num, what), what, "version", 1, 1000000);
  Y7_CHECK(c.version == 1, what, ": unsupported version ", c.version);
  c.graph_hash = need(root, "graph_md5", JVal::Str, what).str;
  c.bit_width = as_int(need(root, "bit_width", JVal::Num, what), what, "bit_width", 2, 16);
  Y7_CHECK(c.bit_width == 8, what, ": bit_width ", c.bit_width, " is not supported (the DPU computes in 8 bits)");
  c.convert_silu_to_hswish = need(root, "nndct_convert_silu_to_hswish", JVal::Bool, what).b;
  c.convert_sigmoid_to_hsigmoid = need(root, "nndct_convert_sigmoid_to_hsigmoid", JVal::Bool, what).b;
  if (const JVal* v = root.get("img_size")) c.img_size = as_int(*v, what, "img_size", 0, 1 << 20);
  if (const JVal* v = root.get("calib_batches")) c.calib_batches = as_int(*v, what, "calib_batches", 0, 1 << 30);
  if (const JVal* v = root.get("calib_images")) c.calib_images = as_int(*v, what, "calib_images", 0, 1 << 30);
  read_table(root, "param", c.bit_width, c.param, what);
  read_table(root, "output", c.bit_width, c.output, what);
  if (const JVal* t = root.get("bias_corr")) {
    Y7_CHECK(t->kind == JVal::Obj, what, ": 'bias_corr' must be an object");
    for (auto& [name, v] : t->obj) {
      Y7_CHECK(v.kind == JVal::Arr, what, ": bias_corr entry '", name, "' must be a list of numbers");
      std::vector<float> f;
      for (auto& e : v.arr) {
        Y7_CHECK(e.kind == JVal::Num && std::isfinite(e.num) && std::abs(e.num) < 1e30, what, ": bias_corr entry '", name,
                 "' holds a bad number");
        f.push_back(float(e.num));
      }
      c.bias_corr[name] = std::move(f);
    }
  }
  return c;
}

void save_config(const QuantConfig& c, const std::string& path) {
  const std::string s = config_to_json(c);
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    Y7_CHECK(!ec, "cannot create directory ", dir.string(), ": ", ec.message());
  }
  io::write_file_atomic(path, s.data(), s.size());
}

QuantConfig load_config(const std::string& path) {
  Y7_CHECK(std::filesystem::is_regular_file(path), "quant config ", path,
           " not found: run --quant_mode calib first (it writes the calibration)");
  auto bytes = io::read_file(path, size_t(64) << 20);
  return config_from_json(std::string(bytes.begin(), bytes.end()), path);
}

}  // namespace y7::quant
