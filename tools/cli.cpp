#include "tools/cli.h"

#include <algorithm>

#include <filesystem>

#include "core/error.h"
#include "io/file_util.h"

namespace y7::cli {

namespace {
std::string canon(std::string s) {
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}
std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}
}  // namespace

Register::Register(const std::string& name, const std::string& help,
                   std::function<int(const std::vector<std::string>&)> run) {
  registry()[name] = Command{name, help, std::move(run)};
}

const std::map<std::string, Command>& commands() { return registry(); }

Args::Args(const std::vector<std::string>& argv, const std::map<std::string, int>& spec) {
  std::map<std::string, int> cspec;
  for (auto& [k, v] : spec) cspec[canon(k)] = v;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    Y7_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, "unexpected argument '", a, "'");
    std::string name = a.substr(2), inline_value;
    bool has_inline = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    name = canon(name);
    auto it = cspec.find(name);
    Y7_CHECK(it != cspec.end(), "unknown option --", name);
    auto& vals = values_[name];
    vals.clear();
    if (has_inline) {
      vals.push_back(inline_value);
      continue;
    }
    int n = it->second;
    if (n == 0) continue;
    if (n == 1) {
      Y7_CHECK(i + 1 < argv.size(), "option --", name, " needs a value");
      vals.push_back(argv[++i]);
      continue;
    }
    // -1: one or more values, up to the next --option
    while (i + 1 < argv.size() && !(argv[i + 1].rfind("--", 0) == 0 && argv[i + 1].size() > 2)) vals.push_back(argv[++i]);
    Y7_CHECK(!vals.empty() || n == -2, "option --", name, " needs at least one value");
  }
}

bool Args::has(const std::string& name) const { return values_.count(canon(name)) > 0; }

std::string Args::str(const std::string& name, const std::string& def) const {
  auto it = values_.find(canon(name));
  return it == values_.end() || it->second.empty() ? def : it->second[0];
}

double Args::num(const std::string& name, double def) const {
  std::string s = str(name);
  if (s.empty()) return def;
  try {
    size_t pos = 0;
    double v = std::stod(s, &pos);
    Y7_CHECK(pos == s.size(), "");
    return v;
  } catch (...) {
    fail("option --", name, " expects a number, got '", s, "'");
  }
}

int Args::integer(const std::string& name, int def) const {
  std::string s = str(name);
  if (s.empty()) return def;
  try {
    size_t pos = 0;
    int v = std::stoi(s, &pos);
    Y7_CHECK(pos == s.size(), "");
    return v;
  } catch (...) {
    fail("option --", name, " expects an integer, got '", s, "'");
  }
}

std::vector<std::string> Args::list(const std::string& name) const {
  auto it = values_.find(canon(name));
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<int> Args::ints(const std::string& name) const {
  std::vector<int> out;
  for (auto& s : list(name)) {
    try {
      size_t pos = 0;
      out.push_back(std::stoi(s, &pos));
      Y7_CHECK(pos == s.size(), "");
    } catch (...) {
      fail("option --", name, " expects integers, got '", s, "'");
    }
  }
  return out;
}

std::string run_dir(const Args& a, const std::string& default_project, bool labels) {
  namespace fs = std::filesystem;
  fs::path dir = io::increment_path((fs::path(a.str("project", default_project)) / a.str("name", "exp")).string(),
                                    a.flag("exist-ok"));
  fs::create_directories(labels ? dir / "labels" : dir);
  return dir.string();
}

}  // namespace y7::cli
