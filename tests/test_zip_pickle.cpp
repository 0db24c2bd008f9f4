// Unit tests of the zip reader (io/zip.h) and the restricted pickle VM (io/pickle.h). Reference
// pickles were produced once by CPython's pickle module (/usr/bin/python3, numpy) and are embedded
// as byte strings; the zip writer below makes small archives (plain and zip64) in memory.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/pickle.h"
#include "io/zip.h"

using namespace y7;
using namespace y7::io;
using K = PickleValue::Kind;

#define BYTES(lit) std::string(lit, sizeof(lit) - 1)

namespace y7test {

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}

namespace {
void put16(std::string& o, uint32_t v) { o += char(v & 0xFF), o += char((v >> 8) & 0xFF); }
void put32(std::string& o, uint32_t v) { put16(o, v & 0xFFFF), put16(o, v >> 16); }
void put64(std::string& o, uint64_t v) { put32(o, uint32_t(v)), put32(o, uint32_t(v >> 32)); }
}  // namespace

// A zip of stored entries laid out like torch.save's (data aligned to 64 bytes). methods[i] (if
// given) is written as entry i's compression method without compressing anything. zip64: every
// size/offset goes through zip64 extra fields and a zip64 end of central directory.
std::string make_test_zip(const std::vector<std::pair<std::string, std::string>>& files, bool zip64,
                          const std::vector<int>& methods) {
  std::string out, cd;
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& [name, data] = files[i];
    uint16_t method = i < methods.size() ? uint16_t(methods[i]) : 0;
    uint64_t off = out.size();
    std::string extra;
    if (zip64) {
      put16(extra, 1), put16(extra, 16), put64(extra, data.size()), put64(extra, data.size());
    }
    size_t base = off + 30 + name.size() + extra.size() + 4;
    size_t pad = (64 - base % 64) % 64;
    put16(extra, 0x4246), put16(extra, uint32_t(pad)), extra.append(pad, 'Z');
    put32(out, 0x04034b50), put16(out, zip64 ? 45 : 20), put16(out, 0), put16(out, method), put32(out, 0);
    put32(out, crc32(data));
    put32(out, zip64 ? 0xFFFFFFFFu : uint32_t(data.size())), put32(out, zip64 ? 0xFFFFFFFFu : uint32_t(data.size()));
    put16(out, uint32_t(name.size())), put16(out, uint32_t(extra.size()));
    out += name, out += extra, out += data;
    std::string cextra;
    if (zip64) put16(cextra, 1), put16(cextra, 24), put64(cextra, data.size()), put64(cextra, data.size()), put64(cextra, off);
    put32(cd, 0x02014b50), put16(cd, 45), put16(cd, zip64 ? 45 : 20), put16(cd, 0), put16(cd, method), put32(cd, 0);
    put32(cd, crc32(data));
    put32(cd, zip64 ? 0xFFFFFFFFu : uint32_t(data.size())), put32(cd, zip64 ? 0xFFFFFFFFu : uint32_t(data.size()));
    put16(cd, uint32_t(name.size())), put16(cd, uint32_t(cextra.size())), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, 0), put32(cd, zip64 ? 0xFFFFFFFFu : uint32_t(off));
    cd += name, cd += cextra;
  }
  uint64_t cd_off = out.size();
  out += cd;
  if (zip64) {
    uint64_t rec = out.size();
    put32(out, 0x06064b50), put64(out, 44), put16(out, 45), put16(out, 45), put32(out, 0), put32(out, 0);
    put64(out, files.size()), put64(out, files.size()), put64(out, cd.size()), put64(out, cd_off);
    put32(out, 0x07064b50), put32(out, 0), put64(out, rec), put32(out, 1);
  }
  put32(out, 0x06054b50), put16(out, 0), put16(out, 0);
  put16(out, zip64 ? 0xFFFF : uint32_t(files.size())), put16(out, zip64 ? 0xFFFF : uint32_t(files.size()));
  put32(out, zip64 ? 0xFFFFFFFFu : uint32_t(cd.size())), put32(out, zip64 ? 0xFFFFFFFFu : uint32_t(cd_off));
  put16(out, 0);
  return out;
}

}  // namespace y7test

using y7test::make_test_zip;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

PickleResult P(const std::string& s, const PickleLimits& lim = {}) { return unpickle(s, nullptr, lim); }

#define EXPECT_ERR(expr, substr)                                             \
  do {                                                                       \
    std::string _m = error_of([&] { (void)(expr); });                       \
    EXPECT_NE(_m.find(substr), std::string::npos) << "message: " << _m;     \
    EXPECT_EQ(_m.find('\n'), std::string::npos) << "message: " << _m;      \
  } while (0)

// Generated once with /usr/bin/python3 (pickle, numpy); see the comment above each constant.
const char kPyP2[] = "\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x61\x71\x01\x5d\x71\x02\x28\x4b\x01\x4a\xfe\xff\xff\xff\x47\x40\x0c\x00\x00\x00\x00\x00\x00\x4e\x88\x89\x65\x58\x01\x00\x00\x00\x62\x71\x03\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x04\x58\x02\x00\x00\x00\x78\x79\x71\x05\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x06\x86\x71\x07\x52\x71\x08\x58\x05\x00\x00\x00\xc3\xa9\xe4\xb8\xad\x71\x09\x86\x71\x0a\x58\x01\x00\x00\x00\x63\x71\x0b\x63\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x73\x65\x74\x0a\x71\x0c\x5d\x71\x0d\x4b\x07\x61\x85\x71\x0e\x52\x71\x0f\x58\x03\x00\x00\x00\x62\x69\x67\x71\x10\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x58\x03\x00\x00\x00\x6e\x65\x67\x71\x11\x8a\x06\x00\x00\x00\x00\x00\xff\x58\x01\x00\x00\x00\x68\x71\x12\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f\x58\x02\x00\x00\x00\x6f\x64\x71\x13\x63\x63\x6f\x6c\x6c\x65\x63\x74\x69\x6f\x6e\x73\x0a\x4f\x72\x64\x65\x72\x65\x64\x44\x69\x63\x74\x0a\x71\x14\x29\x52\x71\x15\x28\x58\x01\x00\x00\x00\x7a\x71\x16\x4b\x01\x58\x01\x00\x00\x00\x79\x71\x17\x4b\x01\x4b\x02\x4b\x03\x87\x71\x18\x75\x58\x02\x00\x00\x00\x66\x73\x71\x19\x63\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x66\x72\x6f\x7a\x65\x6e\x73\x65\x74\x0a\x71\x1a\x5d\x71\x1b\x4b\x05\x61\x85\x71\x1c\x52\x71\x1d\x75\x2e";
const char kPyP4[] = "\x80\x04\x95\xad\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x61\x94\x5d\x94\x28\x4b\x01\x4a\xfe\xff\xff\xff\x47\x40\x0c\x00\x00\x00\x00\x00\x00\x4e\x88\x89\x65\x8c\x01\x62\x94\x43\x02\x78\x79\x94\x8c\x05\xc3\xa9\xe4\xb8\xad\x94\x86\x94\x8c\x01\x63\x94\x8f\x94\x28\x4b\x07\x90\x8c\x03\x62\x69\x67\x94\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8c\x03\x6e\x65\x67\x94\x8a\x06\x00\x00\x00\x00\x00\xff\x8c\x01\x68\x94\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f\x8c\x02\x6f\x64\x94\x8c\x0b\x63\x6f\x6c\x6c\x65\x63\x74\x69\x6f\x6e\x73\x94\x8c\x0b\x4f\x72\x64\x65\x72\x65\x64\x44\x69\x63\x74\x94\x93\x94\x29\x52\x94\x28\x8c\x01\x7a\x94\x4b\x01\x8c\x01\x79\x94\x4b\x01\x4b\x02\x4b\x03\x87\x94\x75\x8c\x02\x66\x73\x94\x28\x4b\x05\x91\x94\x75\x2e";
const char kPyP5[] = "\x80\x05\x95\xad\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x61\x94\x5d\x94\x28\x4b\x01\x4a\xfe\xff\xff\xff\x47\x40\x0c\x00\x00\x00\x00\x00\x00\x4e\x88\x89\x65\x8c\x01\x62\x94\x43\x02\x78\x79\x94\x8c\x05\xc3\xa9\xe4\xb8\xad\x94\x86\x94\x8c\x01\x63\x94\x8f\x94\x28\x4b\x07\x90\x8c\x03\x62\x69\x67\x94\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8c\x03\x6e\x65\x67\x94\x8a\x06\x00\x00\x00\x00\x00\xff\x8c\x01\x68\x94\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f\x8c\x02\x6f\x64\x94\x8c\x0b\x63\x6f\x6c\x6c\x65\x63\x74\x69\x6f\x6e\x73\x94\x8c\x0b\x4f\x72\x64\x65\x72\x65\x64\x44\x69\x63\x74\x94\x93\x94\x29\x52\x94\x28\x8c\x01\x7a\x94\x4b\x01\x8c\x01\x79\x94\x4b\x01\x4b\x02\x4b\x03\x87\x94\x75\x8c\x02\x66\x73\x94\x28\x4b\x05\x91\x94\x75\x2e";
const char kNpF8[] = "\x80\x02\x63\x6e\x75\x6d\x70\x79\x2e\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x0a\x73\x63\x61\x6c\x61\x72\x0a\x71\x00\x63\x6e\x75\x6d\x70\x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x01\x58\x02\x00\x00\x00\x66\x38\x71\x02\x89\x88\x87\x71\x03\x52\x71\x04\x28\x4b\x03\x58\x01\x00\x00\x00\x3c\x71\x05\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x71\x06\x62\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x07\x58\x0e\x00\x00\x00\xc3\x86\x39\xc3\xaa\xc3\xa8\xc2\xb8\xc2\x9a\xc3\xa9\x3f\x71\x08\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x09\x86\x71\x0a\x52\x71\x0b\x86\x71\x0c\x52\x71\x0d\x2e";
const char kNpI8[] = "\x80\x02\x63\x6e\x75\x6d\x70\x79\x2e\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x0a\x73\x63\x61\x6c\x61\x72\x0a\x71\x00\x63\x6e\x75\x6d\x70\x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x01\x58\x02\x00\x00\x00\x69\x38\x71\x02\x89\x88\x87\x71\x03\x52\x71\x04\x28\x4b\x03\x58\x01\x00\x00\x00\x3c\x71\x05\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x71\x06\x62\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x07\x58\x10\x00\x00\x00\xc3\xb9\xc3\xbf\xc3\xbf\xc3\xbf\xc3\xbf\xc3\xbf\xc3\xbf\xc3\xbf\x71\x08\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x09\x86\x71\x0a\x52\x71\x0b\x86\x71\x0c\x52\x71\x0d\x2e";
const char kNpF4[] = "\x80\x02\x63\x6e\x75\x6d\x70\x79\x2e\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x0a\x73\x63\x61\x6c\x61\x72\x0a\x71\x00\x63\x6e\x75\x6d\x70\x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x01\x58\x02\x00\x00\x00\x66\x34\x71\x02\x89\x88\x87\x71\x03\x52\x71\x04\x28\x4b\x03\x58\x01\x00\x00\x00\x3c\x71\x05\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x71\x06\x62\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x07\x58\x07\x00\x00\x00\xc3\x8d\xc3\x8c\xc3\x8c\x3d\x71\x08\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x09\x86\x71\x0a\x52\x71\x0b\x86\x71\x0c\x52\x71\x0d\x2e";
const char kNpArrF4[] = "\x80\x02\x63\x6e\x75\x6d\x70\x79\x2e\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x0a\x5f\x72\x65\x63\x6f\x6e\x73\x74\x72\x75\x63\x74\x0a\x71\x00\x63\x6e\x75\x6d\x70\x79\x0a\x6e\x64\x61\x72\x72\x61\x79\x0a\x71\x01\x4b\x00\x85\x71\x02\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x03\x58\x01\x00\x00\x00\x62\x71\x04\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x05\x86\x71\x06\x52\x71\x07\x87\x71\x08\x52\x71\x09\x28\x4b\x01\x4b\x01\x4b\x03\x86\x71\x0a\x63\x6e\x75\x6d\x70\x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x0b\x58\x02\x00\x00\x00\x66\x34\x71\x0c\x89\x88\x87\x71\x0d\x52\x71\x0e\x28\x4b\x03\x58\x01\x00\x00\x00\x3c\x71\x0f\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x71\x10\x62\x89\x68\x03\x58\x0e\x00\x00\x00\x00\x00\xc3\x80\x3f\x00\x00\x20\x40\x00\x00\x40\xc3\x80\x71\x11\x68\x05\x86\x71\x12\x52\x71\x13\x74\x71\x14\x62\x2e";
const char kNpArrF8[] = "\x80\x02\x63\x6e\x75\x6d\x70\x79\x2e\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x0a\x5f\x72\x65\x63\x6f\x6e\x73\x74\x72\x75\x63\x74\x0a\x71\x00\x63\x6e\x75\x6d\x70\x79\x0a\x6e\x64\x61\x72\x72\x61\x79\x0a\x71\x01\x4b\x00\x85\x71\x02\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x03\x58\x01\x00\x00\x00\x62\x71\x04\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x05\x86\x71\x06\x52\x71\x07\x87\x71\x08\x52\x71\x09\x28\x4b\x01\x4b\x01\x85\x71\x0a\x63\x6e\x75\x6d\x70\x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x0b\x58\x02\x00\x00\x00\x66\x38\x71\x0c\x89\x88\x87\x71\x0d\x52\x71\x0e\x28\x4b\x03\x58\x01\x00\x00\x00\x3c\x71\x0f\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x71\x10\x62\x89\x68\x03\x58\x0e\x00\x00\x00\xc3\x86\x39\xc3\xaa\xc3\xa8\xc2\xb8\xc2\x9a\xc3\xa9\x3f\x71\x11\x68\x05\x86\x71\x12\x52\x71\x13\x74\x71\x14\x62\x2e";
const char kNpArrFortran[] = "\x80\x02\x63\x6e\x75\x6d\x70\x79\x2e\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x0a\x5f\x72\x65\x63\x6f\x6e\x73\x74\x72\x75\x63\x74\x0a\x71\x00\x63\x6e\x75\x6d\x70\x79\x0a\x6e\x64\x61\x72\x72\x61\x79\x0a\x71\x01\x4b\x00\x85\x71\x02\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x03\x58\x01\x00\x00\x00\x62\x71\x04\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x05\x86\x71\x06\x52\x71\x07\x87\x71\x08\x52\x71\x09\x28\x4b\x01\x4b\x02\x4b\x03\x86\x71\x0a\x63\x6e\x75\x6d\x70\x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x0b\x58\x02\x00\x00\x00\x69\x38\x71\x0c\x89\x88\x87\x71\x0d\x52\x71\x0e\x28\x4b\x03\x58\x01\x00\x00\x00\x3c\x71\x0f\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x71\x10\x62\x88\x68\x03\x58\x30\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x71\x11\x68\x05\x86\x71\x12\x52\x71\x13\x74\x71\x14\x62\x2e";

// The dict above: {'a': [1, -2, 3.5, None, True, False], 'b': (b'xy', 'é中'), 'c': {7}, 'big': 2**62,
// 'neg': -2**40, 'h': 2**63-1, 'od': OrderedDict(z=1, y=(1, 2, 3)), 'fs': frozenset({5})}
void check_py_dict(const PickleValue& d) {
  ASSERT_EQ(d.kind, K::Dict);
  ASSERT_EQ(d.entries.size(), 8u);
  EXPECT_EQ(d.entries[0].first->str, "a");
  const PickleValue* a = d.get("a");
  ASSERT_TRUE(a && a->kind == K::List && a->items.size() == 6);
  EXPECT_EQ(a->items[0]->integer, 1);
  EXPECT_EQ(a->items[1]->integer, -2);
  EXPECT_EQ(a->items[2]->real, 3.5);
  EXPECT_TRUE(a->items[3]->is_none());
  EXPECT_TRUE(a->items[4]->kind == K::Bool && a->items[4]->boolean);
  EXPECT_TRUE(a->items[5]->kind == K::Bool && !a->items[5]->boolean);
  const PickleValue* b = d.get("b");
  ASSERT_TRUE(b && b->kind == K::Tuple && b->items.size() == 2);
  EXPECT_EQ(b->items[0]->kind, K::Bytes);
  EXPECT_EQ(b->items[0]->str, "xy");
  EXPECT_EQ(b->items[1]->kind, K::String);
  EXPECT_EQ(b->items[1]->str, "\xc3\xa9\xe4\xb8\xad");
  const PickleValue* c = d.get("c");
  ASSERT_TRUE(c && c->kind == K::Set && c->items.size() == 1);
  EXPECT_EQ(c->items[0]->integer, 7);
  EXPECT_EQ(d.get("big")->integer, int64_t(1) << 62);
  EXPECT_EQ(d.get("neg")->integer, -(int64_t(1) << 40));
  EXPECT_EQ(d.get("h")->integer, INT64_MAX);
  const PickleValue* od = d.get("od");
  ASSERT_TRUE(od && od->kind == K::Dict && od->entries.size() == 2);
  EXPECT_EQ(od->entries[0].first->str, "z");
  EXPECT_EQ(od->get("z")->integer, 1);
  ASSERT_EQ(od->get("y")->items.size(), 3u);
  EXPECT_EQ(od->get("y")->items[2]->integer, 3);
  const PickleValue* fs = d.get("fs");
  ASSERT_TRUE(fs && fs->kind == K::Set && fs->items.size() == 1);
  EXPECT_EQ(fs->items[0]->integer, 5);
  EXPECT_EQ(d.get("missing"), nullptr);
}

}  // namespace

// ------------------------------------------------------------------------------------------ pickle

TEST(Pickle, CPythonProtocols245) {
  check_py_dict(*P(BYTES(kPyP2)).root);
  check_py_dict(*P(BYTES(kPyP4)).root);  // FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, EMPTY_SET...
  check_py_dict(*P(BYTES(kPyP5)).root);
}

TEST(Pickle, NumpyScalarsAndArrays) {
  auto f8 = P(BYTES(kNpF8));
  ASSERT_EQ(f8.root->kind, K::Float);
  EXPECT_EQ(f8.root->real, 0.8001370000000001);
  auto i8 = P(BYTES(kNpI8));
  ASSERT_EQ(i8.root->kind, K::Int);
  EXPECT_EQ(i8.root->integer, -7);
  auto f4 = P(BYTES(kNpF4));
  EXPECT_EQ(f4.root->real, double(0.1f));

  auto arr = P(BYTES(kNpArrF4));
  ASSERT_EQ(arr.root->kind, K::Tensor);
  EXPECT_EQ(arr.root->tensor.sizes(), (Shape{1, 3}));
  EXPECT_EQ(arr.root->tensor.dtype(), DType::F32);
  EXPECT_EQ(arr.root->tensor.item({0, 2}), -3.0);
  auto a8 = P(BYTES(kNpArrF8));
  EXPECT_EQ(a8.root->tensor.item({0}), 0.8001370000000001);
  auto fo = P(BYTES(kNpArrFortran));  // np.asfortranarray(np.arange(6).reshape(2, 3))
  ASSERT_EQ(fo.root->tensor.sizes(), (Shape{2, 3}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(fo.root->tensor.item({i, j}), double(i * 3 + j));
}

TEST(Pickle, SmallOpcodes) {
  // LONG1 negative, LONG4, BINBYTES, DUP, POP, POP_MARK, text INT/LONG/FLOAT/GET/PUT
  auto r = P(BYTES("\x80\x02(\x8a\x02\x00\xff\x8b\x03\x00\x00\x00\x01\x02\x03" "B\x02\x00\x00\x00" "ab"
                   "I01\nI-12\nL77L\nF2.5\np9\n0g9\n2(K\x01\x31Nt."));
  ASSERT_EQ(r.root->kind, K::Tuple);
  const auto& it = r.root->items;
  ASSERT_EQ(it.size(), 9u);
  EXPECT_EQ(it[0]->integer, -256);
  EXPECT_EQ(it[1]->integer, 0x030201);
  EXPECT_EQ(it[2]->str, "ab");
  EXPECT_TRUE(it[3]->boolean);
  EXPECT_EQ(it[4]->integer, -12);
  EXPECT_EQ(it[5]->integer, 77);
  EXPECT_EQ(it[6]->real, 2.5);
  EXPECT_EQ(it[7]->real, 2.5);
  EXPECT_EQ(it[6], it[7]);
  EXPECT_TRUE(it[8]->is_none());
  // SETITEM replaces equal keys; 1 and True are the same key, as in Python
  auto d = P(BYTES("}(K\x01K\x02\x88K\x03X\x01\x00\x00\x00" "aK\x04u."));
  ASSERT_EQ(d.root->entries.size(), 2u);
  EXPECT_EQ(d.root->entries[0].second->integer, 3);
  // UNICODE (raw-unicode-escape)
  auto u = P(BYTES("Vx\\u00e9\n."));
  EXPECT_EQ(u.root->str, "x\xc3\xa9");
}

TEST(Pickle, DisallowedGlobalsAreNeverResolved) {
  EXPECT_ERR(P(BYTES("cos\nsystem\nX\x04\x00\x00\x00true\x85R.")), "pickle: global 'os.system' is not allowed");
  EXPECT_ERR(P(BYTES("cposix\nsystem\n.")), "pickle: global 'posix.system' is not allowed");
  EXPECT_ERR(P(BYTES("c__builtin__\neval\n.")), "pickle: global '__builtin__.eval' is not allowed");
  EXPECT_ERR(P(BYTES("\x80\x04\x8c\x08\x62uiltins\x8c\x04\x65val\x93.")), "pickle: global 'builtins.eval' is not allowed");
  EXPECT_ERR(P(BYTES("csubprocess\nPopen\n.")), "pickle: global 'subprocess.Popen' is not allowed");
  EXPECT_ERR(P(BYTES("cbuiltins\ngetattr\n.")), "pickle: global 'builtins.getattr' is not allowed");
  EXPECT_ERR(P(BYTES("ctorch\nload\n.")), "pickle: global 'torch.load' is not allowed");
  EXPECT_ERR(P(BYTES("ccopyreg\n_reconstructor\n.")), "pickle: global 'copyreg._reconstructor' is not allowed");
  EXPECT_ERR(P(BYTES("ctorch.nn.modules.conv\nos\n.")), "is not allowed");
  EXPECT_TRUE(pickle_global_allowed("models.common", "Conv"));
  EXPECT_TRUE(pickle_global_allowed("__builtin__", "set"));
  EXPECT_FALSE(pickle_global_allowed("models.common", "os"));
}

TEST(Pickle, CallsOnlyWithDataSemantics) {
  EXPECT_ERR(P(BYTES("ctorch\nFloatStorage\n)R.")), "calling 'torch.FloatStorage' is not supported");
  EXPECT_ERR(P(BYTES("K\x01)R.")), "REDUCE on a int");
  EXPECT_ERR(P(BYTES("c_codecs\nencode\n)\x81.")), "cannot instantiate '_codecs.encode'");
  EXPECT_ERR(P(BYTES("K\x01}b.")), "BUILD on a int");
  EXPECT_ERR(P(BYTES("c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R.")), "encoding 'rot13' is not supported");
  // module classes become generic objects whose BUILD state is their __dict__
  auto r = P(BYTES("cmodels.common\nConv\n)\x81}X\x01\x00\x00\x00kK\x05sb."));
  ASSERT_EQ(r.root->kind, K::Object);
  EXPECT_EQ(r.root->str, "models.common.Conv");
  EXPECT_EQ(r.root->get("k")->integer, 5);
}

TEST(Pickle, MalformedStreams) {
  EXPECT_ERR(P(""), "truncated stream (no STOP opcode)");
  EXPECT_ERR(P(BYTES("\x80\x02K\x01")), "no STOP");
  EXPECT_ERR(P(BYTES("\x80\x02.")), "stack underflow");
  EXPECT_ERR(P(BYTES("K\x01(a.")), "stack underflow");  // APPEND cannot reach below a MARK
  EXPECT_ERR(P(BYTES("\xff.")), "unknown opcode 0xff");
  EXPECT_ERR(P(BYTES("\x80\x09N.")), "unsupported protocol 9");
  EXPECT_ERR(P(BYTES("X\xff\xff\xff\xff" "abc.")), "truncated stream");
  EXPECT_ERR(P(BYTES("\x8d\xff\xff\xff\xff\xff\xff\xff\xff.")), "truncated stream");
  EXPECT_ERR(P(BYTES("\x8b\xff\xff\xff\x7f.")), "truncated stream");
  EXPECT_ERR(P(BYTES("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.")), "integer too large");
  EXPECT_ERR(P(BYTES("h\x05.")), "memo key 5 not found");
  EXPECT_ERR(P(BYTES("t.")), "no MARK on the stack");
  EXPECT_ERR(P(BYTES("(K\x01K\x02K\x03" "d.")), "odd number of items");
  EXPECT_ERR(P(BYTES("\x95\xff\x00\x00\x00\x00\x00\x00\x00N.")), "overruns the stream");
  EXPECT_ERR(P(BYTES("\x97.")), "out-of-band buffers are not supported");
  EXPECT_ERR(P(BYTES("cmodels.common\nConv\n")), "truncated stream");
  EXPECT_ERR(P(BYTES("(K\x01tQ.")), "persistent id without a loader");
  EXPECT_ERR(P(BYTES("K\x01K\x02s.")), "stack underflow");
  EXPECT_ERR(P(BYTES("K\x01N\x85N\x87s.")), "stack underflow");
}

TEST(Pickle, BombsAreErrors) {
  // MARK bomb
  EXPECT_ERR(P(std::string(100000, '(') + "."), "MARK nesting deeper than 1000");
  // nested lists: ]]]]...aaaa
  std::string lists = std::string(5000, ']') + std::string(4999, 'a') + ".";
  EXPECT_ERR(P(lists), "nested deeper than 1000 levels");
  // nested tuples: N then TUPLE1 x 100000
  EXPECT_ERR(P("N" + std::string(100000, '\x85') + "."), "nested deeper than 1000 levels");
  // a list that contains itself
  EXPECT_ERR(P(BYTES("]q\x00h\x00" "a.")), "contains a cycle");
  // a DAG that doubles at every level stays linear for the VM (shared nodes)
  std::string dag = "N";
  for (int i = 0; i < 60; ++i) dag += "2\x86";
  auto r = P(dag + ".");
  EXPECT_EQ(r.root->kind, K::Tuple);
  // memory: huge string repeated through the memo and _codecs.encode
  std::string big(1 << 20, 'a');
  std::string s = "X" + std::string("\x00\x00\x10\x00", 4) + big + "q\x01" + "c_codecs\nencode\nq\x02(";
  for (int i = 0; i < 40; ++i) s += BYTES("h\x02h\x01X\x06\x00\x00\x00latin1\x86R");
  s += "t.";
  PickleLimits lim;
  lim.max_bytes = 16 << 20;
  EXPECT_ERR(P(s, lim), "exceeds the 16 MiB limit");
  lim.max_memo = 3;
  EXPECT_ERR(P(BYTES("Nq\x00q\x01q\x02q\x03."), lim), "memo exceeds 3 entries");
}

// ---------------------------------------------------------------------------------------------- zip

TEST(Zip, PlainAndZip64) {
  for (bool z64 : {false, true}) {
    std::string zip = make_test_zip({{"arc/data.pkl", "\x80\x02N."}, {"arc/data/0", std::string(12, 'x')}}, z64, {});
    ZipArchive a = ZipArchive::from_memory(zip.data(), zip.size(), "mem.zip");
    ASSERT_EQ(a.entries().size(), 2u);
    const ZipEntry& e = a.at("arc/data/0");
    EXPECT_EQ(e.size, 12u);
    EXPECT_EQ(e.data_offset % 64, 0u);
    EXPECT_EQ(a.bytes(e), std::string(12, 'x'));
    EXPECT_EQ(a.find("nope"), nullptr);
    auto layout = find_torch_layout(a);
    EXPECT_EQ(layout.prefix, "arc/");
    // storages are views of the archive bytes, no copy
    auto st = a.storage(e, 8, 4);
    EXPECT_EQ(static_cast<const uint8_t*>(st->data()), a.source()->data() + e.data_offset);
    EXPECT_EQ(st->nbytes(), 8u);
    EXPECT_ERR(a.storage(e, 13, 1), "holds 12 bytes, 13 needed");
  }
}

TEST(Zip, Malformed) {
  std::string good = make_test_zip({{"a/data.pkl", "\x80\x02N."}, {"a/data/0", "abcd"}}, false, {});
  auto open = [](const std::string& s) { return ZipArchive::from_memory(s.data(), s.size(), "t.zip"); };
  EXPECT_ERR(open(""), "'t.zip' is empty");
  EXPECT_ERR(open("hello world, not a zip at all"), "'t.zip' is not a zip archive");
  EXPECT_ERR(open(BYTES("\x80\x02}q\x00.")), "legacy torch.save");
  EXPECT_ERR(open(good.substr(0, good.size() - 30)), "truncated zip archive");
  // duplicate names
  EXPECT_ERR(open(make_test_zip({{"a/x", "1"}, {"a/x", "2"}}, false, {})), "duplicate zip entry 'a/x'");
  // compressed entry: rejected when its data are accessed
  std::string comp = make_test_zip({{"a/data.pkl", "\x80\x02N."}}, false, {8});
  ZipArchive c = open(comp);
  EXPECT_ERR(c.bytes(c.at("a/data.pkl")), "entry 'a/data.pkl' is compressed (method 8); only stored entries are supported");
  // central directory offset beyond the file
  std::string bad = good;
  size_t eocd = bad.size() - 22;
  bad[eocd + 16] = '\xff', bad[eocd + 17] = '\xff', bad[eocd + 18] = '\xff', bad[eocd + 19] = '\x7f';
  EXPECT_ERR(open(bad), "central directory (offset");
  // entry count larger than the central directory can hold
  bad = good;
  bad[eocd + 8] = bad[eocd + 10] = '\xf0';
  EXPECT_ERR(open(bad), "declares");
  // huge declared size in the central directory
  bad = good;
  size_t cd = good.find("PK\x01\x02");
  for (int i = 0; i < 4; ++i) bad[cd + 20 + i] = bad[cd + 24 + i] = bad[18 + i] = bad[22 + i] = '\x7f';
  EXPECT_ERR(open(bad), "lies outside the file");
  // local header name differs from the central directory
  bad = good;
  bad[30] = 'b';
  EXPECT_ERR(open(bad), "local header");
  // local header offset pointing into nowhere
  bad = good;
  for (int i = 0; i < 4; ++i) bad[cd + 42 + i] = '\x7e';
  EXPECT_ERR(open(bad), "bad local header");
  // encrypted
  bad = good;
  bad[cd + 8] = 1;
  EXPECT_ERR(open(bad), "is encrypted");
  // a zip64 locator pointing outside
  std::string z = make_test_zip({{"a/data.pkl", "\x80\x02N."}}, true, {});
  size_t loc = z.size() - 22 - 20;
  for (int i = 0; i < 8; ++i) z[loc + 8 + i] = '\x7f';
  EXPECT_ERR(open(z), "zip64 end of central directory record");
  // zip64 extra field missing for a saturated size
  std::string z2 = make_test_zip({{"a/data.pkl", "\x80\x02N."}}, true, {});
  size_t cd2 = z2.find("PK\x01\x02");
  z2[cd2 + 30] = 0;  // extra length 0
  EXPECT_ERR(open(z2), "");
  // no data.pkl
  ZipArchive nd = open(make_test_zip({{"a/other", "x"}}, false, {}));
  EXPECT_ERR(find_torch_layout(nd), "no data.pkl entry");
}

TEST(Zip, MissingAndSpecialFiles) {
  EXPECT_ERR(ZipArchive::open("/nonexistent/x.pt"), "cannot open '/nonexistent/x.pt'");
  EXPECT_ERR(ZipArchive::open(testing::TempDir()), "is a directory");
  EXPECT_ERR(ZipArchive::open("/dev/null"), "is not a regular file");
}
