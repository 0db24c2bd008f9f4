// yolo7: the command-line front end. Each subcommand lives in tools/cmd_<name>.cpp.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"
#include "tools/cli.h"

static void usage() {
  std::fprintf(stderr, "usage: yolo7 <command> [options]\n\ncommands:\n");
  for (auto& [name, c] : y7::cli::commands()) std::fprintf(stderr, "  %-10s %s\n", name.c_str(), c.help.c_str());
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
    usage();
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  auto& cmds = y7::cli::commands();
  auto it = cmds.find(name);
  if (it == cmds.end()) {
    std::fprintf(stderr, "yolo7: error: unknown command '%s'\n", name.c_str());
    usage();
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return it->second.run(args);
  } catch (const y7::Error& e) {
    std::fprintf(stderr, "yolo7: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "yolo7: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "yolo7: error: %s\n", e.what());
    return 1;
  }
}
