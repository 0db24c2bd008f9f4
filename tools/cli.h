// The yolo7 command line: a registry of subcommands (one file each, tools/cmd_*.cpp) and a small
// argument parser that accepts upstream's flag spellings (--conf-thres and --conf_thres alike).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace y7::cli {

class Args {
 public:
  // spec: flag name (without --) -> number of values: 0 = boolean, 1 = one, -1 = one or more.
  Args(const std::vector<std::string>& argv, const std::map<std::string, int>& spec);
  bool has(const std::string& name) const;
  bool flag(const std::string& name) const { return has(name); }
  std::string str(const std::string& name, const std::string& def = "") const;
  double num(const std::string& name, double def) const;
  int integer(const std::string& name, int def) const;
  std::vector<std::string> list(const std::string& name) const;
  std::vector<int> ints(const std::string& name) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

struct Command {
  std::string name, help;
  std::function<int(const std::vector<std::string>&)> run;  // args after the subcommand
};

// Registers a command at static-initialisation time.
struct Register {
  Register(const std::string& name, const std::string& help,
           std::function<int(const std::vector<std::string>&)> run);
};

const std::map<std::string, Command>& commands();

// A command's run folder, as upstream's increment_path(Path(opt.project) / opt.name, opt.exist_ok):
// --project (default_project) / --name (exp), numbered exp2, exp3... unless --exist-ok. Created,
// with labels/ inside when `labels` (--save-txt).
std::string run_dir(const Args& a, const std::string& default_project, bool labels);

}  // namespace y7::cli
