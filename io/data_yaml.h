// Upstream data yaml (data/coco.yaml style): train / val / test sources (a file list .txt, an image
// directory, or a list of those), nc and names. Relative paths resolve like upstream (relative to
// the current directory); when that does not exist, relative to the yaml's folder, and then to
// the yaml folder's parent (upstream's own examples write paths like "dataset/images/train" next
// to a data.yaml inside "dataset/").
#pragma once
#include <string>
#include <vector>

namespace y7::io {

struct DataConfig {
  std::string path;                         // the yaml file
  std::vector<std::string> train, val, test; // resolved sources (empty when absent)
  int nc = 0;
  std::vector<std::string> names;           // nc entries (filled with "class<i>" if absent)
};

// Throws y7::Error (one line, naming the file) for missing files, bad yaml, nc/names mismatch.
DataConfig load_data_yaml(const std::string& path);
// Resolve one source path like load_data_yaml does (exposed for tests / the CLI).
std::string resolve_data_path(const std::string& p, const std::string& yaml_path);

}  // namespace y7::io
