// Small file helpers shared by the readers and writers in io/.
#pragma once
#include <string>
#include <vector>

namespace y7::io {

std::vector<char> read_file(const std::string& path, size_t max_bytes = size_t(1) << 34);
// Writes to "<path>.tmp.<pid>" then renames over `path`, so readers never see a half-written file.
void write_file_atomic(const std::string& path, const void* data, size_t size);
// Fault injection for tests, called by the atomic writers halfway through their temp file: with
// Y7_FAULT_KILL_WRITE="<suffix>:<n>" in the environment, the n-th call (1-based) for a path ending
// in <suffix> SIGKILLs the process, as a kill -9 during a checkpoint save would. A no-op otherwise.
void fault_point(const std::string& path);
// Copies src over dst through write_file_atomic (dst is either the old file or the whole copy).
void copy_file_atomic(const std::string& src, const std::string& dst);
// Upstream increment_path: runs/detect/exp, exp2, exp3, ... (exist_ok, or a free path, keeps `path`).
std::string increment_path(const std::string& path, bool exist_ok);

}  // namespace y7::io
