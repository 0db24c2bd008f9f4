#include "io/data_yaml.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace fs = std::filesystem;

namespace y7::io {

std::string resolve_data_path(const std::string& p, const std::string& yaml_path) {
  fs::path q(p);
  if (q.is_absolute() || fs::exists(q)) return p;
  fs::path dir = fs::path(yaml_path).parent_path();
  std::error_code ec;
  for (fs::path base : {dir, dir.parent_path()}) {
    if (base.empty()) continue;
    fs::path c = base / q;
    if (fs::exists(c, ec)) return c.lexically_normal().string();
  }
  return p;  // unresolved: the dataset reports it as missing
}

namespace {
std::vector<std::string> sources(const YAML::Node& n, const std::string& key, const std::string& yaml) {
  std::vector<std::string> out;
  if (!n || n.IsNull()) return out;
  if (n.IsScalar()) {
    out.push_back(resolve_data_path(n.as<std::string>(), yaml));
  } else if (n.IsSequence()) {
    for (const auto& e : n) {
      Y7_CHECK(e.IsScalar(), yaml, ": '", key, "' entries must be paths");
      out.push_back(resolve_data_path(e.as<std::string>(), yaml));
    }
  } else {
    fail(yaml, ": '", key, "' must be a path or a list of paths");
  }
  return out;
}
}  // namespace

DataConfig load_data_yaml(const std::string& path) {
  Y7_CHECK(fs::is_regular_file(path), "data yaml not found: ", path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail(path, ": invalid yaml: ", e.msg, " (line ", e.mark.line + 1, ")");
  }
  Y7_CHECK(root.IsMap(), path, ": a data yaml must be a mapping with train/val/nc/names");
  DataConfig c;
  c.path = path;
  try {
    c.train = sources(root["train"], "train", path);
    c.val = sources(root["val"], "val", path);
    c.test = sources(root["test"], "test", path);
    if (root["nc"]) {
      Y7_CHECK(root["nc"].IsScalar(), path, ": nc must be an integer");
      c.nc = root["nc"].as<int>();
    }
    auto names = root["names"];
    if (names && !names.IsNull()) {
      if (names.IsSequence()) {
        for (const auto& e : names) c.names.push_back(e.as<std::string>());
      } else if (names.IsMap()) {  // {0: a, 1: b} form
        std::vector<std::pair<int, std::string>> kv;
        for (const auto& e : names) kv.emplace_back(e.first.as<int>(), e.second.as<std::string>());
        std::sort(kv.begin(), kv.end());
        for (size_t i = 0; i < kv.size(); ++i) {
          Y7_CHECK(kv[i].first == int(i), path, ": names keys must be 0..n-1");
          c.names.push_back(kv[i].second);
        }
      } else {
        fail(path, ": names must be a list");
      }
    }
  } catch (const YAML::Exception& e) {
    fail(path, ": bad value: ", e.msg);
  }
  if (!root["nc"]) c.nc = int(c.names.size());
  Y7_CHECK(c.nc > 0, path, ": nc must be > 0");
  if (c.names.empty())
    for (int i = 0; i < c.nc; ++i) c.names.push_back("class" + std::to_string(i));
  Y7_CHECK(int(c.names.size()) == c.nc, path, ": ", c.names.size(), " names found, but nc=", c.nc);
  Y7_CHECK(!c.train.empty() || !c.val.empty(), path, ": no train or val source");
  return c;
}

}  // namespace y7::io
