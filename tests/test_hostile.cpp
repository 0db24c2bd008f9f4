// Hostile checkpoints through the CLI: `yolo7 inspect --weights <file>` must exit 1 with one line
// "yolo7: error: <message>" on stderr, and must never execute anything a pickle asks for. The files
// are generated here (a small zip writer lives in test_zip_pickle.cpp). Set Y7_DUMP_HOSTILE=<dir>
// to keep them (e.g. as a fuzzing seed corpus, see fuzz/README.md).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace y7test {
std::string make_test_zip(const std::vector<std::pair<std::string, std::string>>& files, bool zip64,
                          const std::vector<int>& methods);
}

namespace {

const std::string kFix = Y7_SHARED_FIXTURES;

// ---- a tiny pickle writer (protocol 2 opcodes)
struct Pk {
  std::string s = std::string("\x80\x02", 2);
  Pk& raw(const std::string& b) { s += b; return *this; }
  Pk& str(const std::string& v) {
    s += 'X';
    for (int i = 0; i < 4; ++i) s += char((v.size() >> (8 * i)) & 0xFF);
    s += v;
    return *this;
  }
  Pk& i32(int32_t v) {
    s += 'J';
    for (int i = 0; i < 4; ++i) s += char((uint32_t(v) >> (8 * i)) & 0xFF);
    return *this;
  }
  Pk& global(const std::string& m, const std::string& n) { s += "c" + m + "\n" + n + "\n"; return *this; }
  Pk& mark() { s += '('; return *this; }
  Pk& tuple() { s += 't'; return *this; }
  Pk& stop() { s += '.'; return *this; }
  // _rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())
  Pk& tensor(const std::string& storage_type, const std::string& key, int numel, int offset,
             const std::vector<int>& size, const std::vector<int>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").i32(numel).tuple().raw("Q");
    i32(offset);
    mark();
    for (int v : size) i32(v);
    tuple().mark();
    for (int v : stride) i32(v);
    tuple().raw("\x89").global("collections", "OrderedDict").raw(")R").tuple().raw("R");
    return *this;
  }
};

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class Hostile : public testing::Test {
 protected:
  static std::string dir() {
    const char* d = std::getenv("Y7_DUMP_HOSTILE");
    std::string out = d && *d ? d : testing::TempDir() + "/y7_hostile_" + std::to_string(::getpid());
    fs::create_directories(out);
    return out;
  }
  static std::string marker() { return testing::TempDir() + "/y7_pwned_" + std::to_string(::getpid()); }
  static void TearDownTestSuite() {
    const char* d = std::getenv("Y7_DUMP_HOSTILE");
    if (!(d && *d)) fs::remove_all(testing::TempDir() + "/y7_hostile_" + std::to_string(::getpid()));
  }

  std::string write(const std::string& name, const std::string& bytes) {
    std::string p = dir() + "/" + name;
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return p;
  }
  static std::string zip(const std::string& pkl, std::vector<std::pair<std::string, std::string>> extra = {}) {
    extra.insert(extra.begin(), {"arc/data.pkl", pkl});
    return y7test::make_test_zip(extra, false, {});
  }

  // Runs the CLI and checks: exit code 1, exactly one line on stderr, which contains `expect`.
  void expect_cli_error(const std::string& file, const std::string& expect) {
    SCOPED_TRACE(file);
    std::string cmd = std::string(Y7_CLI) + " inspect --weights '" + file + "' 2>&1 >/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string err;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) err.append(buf, n);
    int status = ::pclose(p);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal; stderr: " << err;
    EXPECT_EQ(WEXITSTATUS(status), 1) << err;
    ASSERT_FALSE(err.empty());
    EXPECT_EQ(err.find('\n'), err.size() - 1) << "more than one line: " << err;
    EXPECT_EQ(err.rfind("yolo7: error: ", 0), 0u) << err;
    EXPECT_NE(err.find(expect), std::string::npos) << "stderr: " << err;
    EXPECT_FALSE(fs::exists(marker())) << "a pickle payload was executed";
  }
};

TEST_F(Hostile, NotAZipEmptyDirectoryMissing) {
  expect_cli_error(write("text.pt", "this is not a checkpoint\n"), "is not a zip archive");
  expect_cli_error(write("legacy.pt", std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15)),
                   "legacy torch.save pickle format is not supported");
  expect_cli_error(write("empty.pt", ""), "is empty");
  fs::create_directories(dir() + "/a_directory.pt");
  expect_cli_error(dir() + "/a_directory.pt", "is a directory");
  expect_cli_error(dir() + "/does_not_exist.pt", "cannot open");
}

TEST_F(Hostile, BrokenZipStructures) {
  std::string real = read_all(kFix + "/yolov7-tiny/model.pt");
  ASSERT_GT(real.size(), 100000u);
  expect_cli_error(write("truncated.pt", real.substr(0, real.size() / 2)), "truncated zip archive");
  expect_cli_error(write("truncated_tail.pt", real.substr(0, real.size() - 10)), "truncated zip archive");
  // a central directory entry with a broken signature
  std::string bad_cd = real;
  size_t cd = bad_cd.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(cd, std::string::npos);
  size_t second = bad_cd.find(std::string("PK\x01\x02", 4), cd + 4);
  bad_cd[second + 2] = 'X';
  expect_cli_error(write("bad_central_directory.pt", bad_cd), "bad zip central directory (entry 1)");
  // central directory offset past the end
  std::string small = zip(Pk().raw("N").stop().s);
  std::string bad_off = small;
  size_t eocd = bad_off.size() - 22;
  bad_off[eocd + 19] = '\x40';
  expect_cli_error(write("cd_outside.pt", bad_off), "zip central directory (offset");
  // compressed entry
  expect_cli_error(write("compressed.pt", y7test::make_test_zip({{"arc/data.pkl", "xxxx"}}, false, {8})),
                   "entry 'arc/data.pkl' is compressed (method 8); only stored entries are supported");
  // huge declared sizes (32-bit fields, and 64-bit through zip64)
  std::string huge = small;
  size_t c = huge.find(std::string("PK\x01\x02", 4));
  for (int i = 0; i < 4; ++i) huge[c + 20 + i] = huge[c + 24 + i] = huge[18 + i] = huge[22 + i] = '\x7f';
  expect_cli_error(write("huge_size.pt", huge), "lies outside the file");
  std::string huge64 = y7test::make_test_zip({{"arc/data.pkl", Pk().raw("N").stop().s}}, true, {});
  size_t c64 = huge64.find(std::string("PK\x01\x02", 4));
  for (int i = 0; i < 16; ++i) huge64[c64 + 46 + 12 + 4 + i] = '\xff';  // zip64 size and compressed size
  for (int i = 0; i < 16; ++i) huge64[30 + 12 + 4 + i] = '\xff';        // and in the local header
  expect_cli_error(write("huge_size_zip64.pt", huge64), "lies outside the file");
  // entry count that cannot fit in the central directory
  std::string many = small;
  many[eocd + 8] = many[eocd + 10] = '\xff', many[eocd + 9] = many[eocd + 11] = '\x7f';
  expect_cli_error(write("too_many_entries.pt", many), "declares 32767 entries");
  // duplicate entries
  expect_cli_error(write("duplicate.pt", y7test::make_test_zip({{"arc/data.pkl", "N."}, {"arc/data.pkl", "N."}}, false, {})),
                   "duplicate zip entry 'arc/data.pkl'");
  expect_cli_error(write("no_data_pkl.pt", y7test::make_test_zip({{"arc/version", "3\n"}}, false, {})),
                   "no data.pkl entry");
}

TEST_F(Hostile, PicklesThatWouldExecuteCode) {
  std::string touch = "touch " + marker();
  fs::remove(marker());
  // what pickle.dumps writes for an object whose __reduce__ returns (os.system, ('touch ...',))
  expect_cli_error(write("os_system.pt", zip(Pk().global("os", "system").str(touch).raw("\x85R").stop().s)),
                   "pickle: global 'os.system' is not allowed");
  expect_cli_error(write("posix_system.pt", zip(Pk().global("posix", "system").str(touch).raw("\x85R").stop().s)),
                   "pickle: global 'posix.system' is not allowed");
  // builtins.eval through STACK_GLOBAL (protocol 4)
  std::string ev = std::string("\x80\x04", 2) + "\x8c\x08" "builtins" "\x8c\x04" "eval" "\x93";
  std::string code = "__import__('os').system('" + touch + "')";
  ev += "X";
  for (int i = 0; i < 4; ++i) ev += char((code.size() >> (8 * i)) & 0xFF);
  ev += code + "\x85R.";
  expect_cli_error(write("builtins_eval.pt", zip(ev)), "pickle: global 'builtins.eval' is not allowed");
  expect_cli_error(write("subprocess.pt", zip(Pk().global("subprocess", "check_call").mark().str("touch").str(marker())
                                                  .raw("l\x85R").stop().s)),
                   "pickle: global 'subprocess.check_call' is not allowed");
  // hidden inside an otherwise normal checkpoint dict, after a model class
  expect_cli_error(write("nested_eval.pt", zip(Pk().raw("}").str("model").global("models.yolo", "Model").raw(")\x81")
                                                   .str("x").global("builtins", "exec").str(touch).raw("\x85R").raw("s")
                                                   .stop().s)),
                   "pickle: global 'builtins.exec' is not allowed");
  EXPECT_FALSE(fs::exists(marker()));
}

TEST_F(Hostile, PickleBombsAndGarbage) {
  expect_cli_error(write("mark_bomb.pt", zip(std::string(200000, '(') + ".")), "MARK nesting deeper than 1000");
  expect_cli_error(write("list_bomb.pt", zip(std::string(50000, ']') + std::string(49999, 'a') + ".")),
                   "nested deeper than 1000 levels");
  expect_cli_error(write("tuple_bomb.pt", zip("N" + std::string(200000, '\x85') + ".")), "nested deeper than 1000 levels");
  expect_cli_error(write("cycle.pt", zip(Pk().raw("]q\x01h\x01" "a").stop().s)), "contains a cycle");
  expect_cli_error(write("no_stop.pt", zip(Pk().raw("}").s)), "no STOP opcode");
  expect_cli_error(write("underflow.pt", zip(Pk().raw("s").stop().s)), "stack underflow");
  expect_cli_error(write("bad_opcode.pt", zip(Pk().raw("\xfe").stop().s)), "unknown opcode 0xfe");
  expect_cli_error(write("memo_missing.pt", zip(Pk().raw(std::string("j\x10\x27\x00\x00", 5)).stop().s)), "memo key 10000 not found");
  expect_cli_error(write("huge_string.pt", zip(Pk().raw("X\xf0\xff\xff\x7f" "abc").stop().s)), "truncated stream");
  expect_cli_error(write("not_a_dict.pt", zip(Pk().raw("K\x05").stop().s)), "top-level object is a int");
  expect_cli_error(write("model_not_model.pt", zip(Pk().raw("}").str("model").raw("K\x05s").stop().s)),
                   "'model' is a int");
}

TEST_F(Hostile, TensorsAndStorages) {
  auto ckpt = [](const Pk& t) { return Pk().raw("}").str("w").raw(t.s.substr(2)).raw("s").stop().s; };
  std::string st16(16, '\0');
  // a valid one first: the generator itself is right
  {
    std::string ok = zip(ckpt(Pk().tensor("FloatStorage", "0", 4, 0, {2, 2}, {2, 1})), {{"arc/data/0", st16}});
    std::string cmd = std::string(Y7_CLI) + " inspect --weights '" + write("valid_tensor.pt", ok) + "' 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    EXPECT_EQ(WEXITSTATUS(::pclose(p)), 0) << out;
    EXPECT_NE(out.find("float32  [2,2]"), std::string::npos) << out;
  }
  expect_cli_error(write("tensor_outside.pt", zip(ckpt(Pk().tensor("FloatStorage", "0", 4, 0, {100}, {1})),
                                                  {{"arc/data/0", st16}})),
                   "tensor [100] at offset 0 reaches element 99 outside its storage of 4 elements");
  expect_cli_error(write("tensor_offset.pt", zip(ckpt(Pk().tensor("FloatStorage", "0", 4, 3, {2}, {1})),
                                                 {{"arc/data/0", st16}})),
                   "outside its storage of 4 elements");
  expect_cli_error(write("tensor_stride.pt", zip(ckpt(Pk().tensor("FloatStorage", "0", 4, 0, {2, 2}, {1 << 30, 1})),
                                                 {{"arc/data/0", st16}})),
                   "outside its storage");
  expect_cli_error(write("tensor_overflow.pt",
                         zip(ckpt(Pk().tensor("FloatStorage", "0", 4, 0, {1 << 30, 1 << 30, 1 << 30}, {1 << 30, 1 << 30, 1})),
                             {{"arc/data/0", st16}})),
                   "too large");
  expect_cli_error(write("tensor_negative.pt", zip(ckpt(Pk().tensor("FloatStorage", "0", 4, 0, {-2}, {1})),
                                                   {{"arc/data/0", st16}})),
                   "negative size");
  expect_cli_error(write("storage_too_big.pt", zip(ckpt(Pk().tensor("FloatStorage", "0", 1000, 0, {4}, {1})),
                                                   {{"arc/data/0", st16}})),
                   "declares 1000 float32 elements but its entry holds only 16 bytes");
  expect_cli_error(write("storage_missing.pt", zip(ckpt(Pk().tensor("HalfStorage", "7", 4, 0, {4}, {1})))),
                   "storage 'arc/data/7' is missing from the archive");
  expect_cli_error(write("storage_type.pt", zip(ckpt(Pk().tensor("ComplexDoubleStorage", "0", 1, 0, {1}, {1})),
                                                {{"arc/data/0", st16}})),
                   "global 'torch.ComplexDoubleStorage' is not allowed");
  expect_cli_error(write("storage_key.pt", zip(ckpt(Pk().tensor("FloatStorage", "../../etc/passwd", 1, 0, {1}, {1})))),
                   "bad storage key");
}

}  // namespace
