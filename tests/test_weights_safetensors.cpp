// The .safetensors reader and writer: round trips for every dtype, files written by an independent
// Python writer (scripts/safetensors_np.py) read correctly, C++-written files read back by the
// Python hand-parser, and every malformed file refused with a message naming the problem, the file
// and the tensor — before anything the header merely claims is allocated.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "models/safetensors.h"
#include "support/testing.h"

using namespace shiftlab;
using models::TensorMap;

namespace {

std::string python() { return "/usr/bin/python3 "; }
std::string script(const std::string& s) { return testutil::source_path("scripts/" + s); }

TensorMap every_dtype(uint64_t seed) {
  torch::manual_seed(seed);
  TensorMap t;
  auto f = torch::randn({2, 3}, torch::kFloat64) * 100;
  t["f64"] = f;
  t["f32"] = f.to(torch::kFloat32);
  t["f16"] = f.to(torch::kFloat16);
  t["bf16"] = f.to(torch::kBFloat16);
  t["i64"] = torch::randint(-(1LL << 50), 1LL << 50, {4}, torch::kInt64);
  t["i32"] = torch::randint(-(1LL << 30), 1LL << 30, {2, 2}, torch::kInt32);
  t["i16"] = torch::randint(-30000, 30000, {3}, torch::kInt16);
  t["i8"] = torch::randint(-128, 128, {3, 1}, torch::kInt8);
  t["u8"] = torch::randint(0, 256, {5}, torch::kUInt8);
  t["bool"] = torch::randint(0, 2, {2, 2}, torch::kInt64).to(torch::kBool);
  t["scalar"] = torch::tensor(3.5);
  t["empty"] = torch::zeros({0, 4});
  t["noncontig"] = torch::arange(12, torch::kFloat32).reshape({3, 4}).t();  // stored contiguous
  t["layer1.0.conv1.weight"] = torch::randn({2, 1, 3, 3});
  return t;
}

void expect_same(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    const auto& w = b.at(k);
    EXPECT_EQ(v.scalar_type(), w.scalar_type()) << k;
    EXPECT_EQ(v.sizes(), w.sizes()) << k;
    EXPECT_TRUE(torch::equal(v, w)) << k;
  }
}

std::string write_bytes(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::string p = dir + "/" + name;
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

// A file with header `json`, `data_size` zero bytes of data; the length field says `len` (default:
// the true header length).
std::string craft(const std::string& json, size_t data_size, int64_t len = -1) {
  uint64_t n = len < 0 ? json.size() : static_cast<uint64_t>(len);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json + std::string(data_size, '\0');
}

std::string load_error(const std::string& path) {
  try {
    models::load_safetensors(path);
  } catch (const core::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("WRONG EXCEPTION TYPE: ") + e.what();
  }
  return "NO ERROR";
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtypeWithMetadata) {
  auto d = testutil::fresh_dir("st_roundtrip");
  auto t = every_dtype(1);
  std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "héllo \"quoted\""}};
  models::save_safetensors(d + "/a.safetensors", t, meta);
  std::map<std::string, std::string> meta2;
  auto back = models::load_safetensors(d + "/a.safetensors", &meta2);
  expect_same(t, back);
  EXPECT_EQ(meta, meta2);
  EXPECT_TRUE(back.at("noncontig").is_contiguous());
  // the in-memory image is the same bytes as the file
  EXPECT_EQ(models::safetensors_bytes(t, meta), core::read_file(d + "/a.safetensors"));
  // header is 8-byte aligned (data section starts on an 8-byte boundary)
  auto h = models::read_safetensors_header(d + "/a.safetensors");
  EXPECT_EQ(h.data_start % 8, 0u);
  EXPECT_EQ(h.entries.size(), t.size());
}

TEST(Safetensors, ReadsFileWrittenByIndependentPythonWriter) {
  auto d = testutil::fresh_dir("st_python_write");
  std::string out;
  ASSERT_EQ(testutil::run_shell(python() + script("weights_fixtures.py") + " safetensors " + d + "/py.safetensors", &out), 0)
      << out;
  std::map<std::string, std::string> meta;
  auto t = models::load_safetensors(d + "/py.safetensors", &meta);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"framework", "numpy"}, {"note", "fixture"}}));
  // the formulas documented in weights_fixtures.py:dtype_fixture
  auto k = torch::arange(6, torch::kFloat64).reshape({2, 3});
  auto f = 1.5 * k - 4;
  auto ki = torch::arange(6, torch::kInt64).reshape({2, 3});
  std::map<std::string, torch::Tensor> want = {
      {"f64", f},
      {"f32", f.to(torch::kFloat32)},
      {"f16", f.to(torch::kFloat16)},
      {"bf16", f.to(torch::kBFloat16)},
      {"i64", (ki * 37 - 100 + (int64_t(1) << 40))},
      {"i32", (ki * 37 - 100).to(torch::kInt32)},
      {"i16", (ki * 37 - 100).to(torch::kInt16)},
      {"i8", (ki * 37 - 100).to(torch::kInt8)},
      {"u8", (ki * 37).to(torch::kUInt8)},
      {"bool", (ki % 2 == 1)},
      {"scalar", torch::tensor(7.25f)},
      {"empty", torch::zeros({0, 3})},
  };
  expect_same(want, t);
}

TEST(Safetensors, PythonHandParserReadsCppWrittenFile) {
  auto d = testutil::fresh_dir("st_python_read");
  auto t = every_dtype(2);
  models::save_safetensors(d + "/cpp.safetensors", t, {{"who", "c++"}});
  std::string out;
  ASSERT_EQ(testutil::run_shell(python() + script("safetensors_np.py") + " dump " + d + "/cpp.safetensors 2>&1", &out), 0)
      << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["__metadata__"]["who"], "c++");
  for (auto& [k, v] : t) {
    ASSERT_TRUE(j.contains(k)) << k;
    auto e = j[k];
    EXPECT_EQ(e["dtype"].get<std::string>(), models::safetensors_dtype_code(v.scalar_type(), k));
    EXPECT_EQ(e["shape"].get<std::vector<int64_t>>(), v.sizes().vec()) << k;
    auto flat = v.contiguous().reshape({-1});
    ASSERT_EQ(e["values"].size(), static_cast<size_t>(flat.numel())) << k;
    for (int64_t i = 0; i < flat.numel(); ++i) {
      if (v.scalar_type() == torch::kInt64) {
        EXPECT_EQ(e["values"][static_cast<size_t>(i)].get<int64_t>(), flat[i].item<int64_t>()) << k << "[" << i << "]";
      } else {
        EXPECT_EQ(e["values"][static_cast<size_t>(i)].get<double>(), flat[i].to(torch::kFloat64).item<double>())
            << k << "[" << i << "]";
      }
    }
  }
}

TEST(Safetensors, MalformedFilesAreRefusedNamingTheProblem) {
  auto d = testutil::fresh_dir("st_malformed");
  struct Case {
    std::string name, bytes, expect, tensor;
  };
  const std::string ok1 = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string good = craft(ok1, 8);
  std::vector<Case> cases = {
      {"tiny", std::string("\x05\0\0", 3), "shorter than the 8-byte header length", ""},
      {"len_beyond_file", craft(ok1, 8, 1000), "header length 1000 exceeds the file", ""},
      {"len_terabytes", craft(ok1, 8, int64_t(1) << 42), "exceeds the file", ""},
      {"bad_json", craft(R"({"a": {"dtype": "F32", )", 8), "not valid JSON", ""},
      {"json_not_object", craft("[1, 2, 3]", 0), "not an object", ""},
      {"unknown_dtype", craft(R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8), "unknown dtype 'F33'", "w"},
      {"unsupported_dtype", craft(R"({"w":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}})", 8), "not supported", "w"},
      {"offsets_past_end", craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8),
       "run past the end of the 8-byte data section", "w"},
      {"begin_after_end", craft(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8), "end before begin", "w"},
      {"overlap",
       craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       "overlap", "b"},
      {"shape_size_disagree", craft(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 16),
       "is 12 bytes but data_offsets [0, 8] span 8", "w"},
      {"claims_terabytes",
       craft(R"({"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}})", 8),
       "needs more bytes than the 8-byte data section holds", "w"},
      {"huge_dims_overflow",
       craft(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8),
       "needs more bytes", "w"},
      {"negative_dim", craft(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "not a non-negative integer", "w"},
      {"float_dim", craft(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8), "not a non-negative integer", "w"},
      {"missing_dtype", craft(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8), "'dtype'", "w"},
      {"extra_field", craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8), "unexpected field 'x'", "w"},
      {"bad_offsets", craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "data_offsets", "w"},
      {"duplicate_name",
       craft(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
       "names tensor 'w' twice", ""},
      {"metadata_not_string", craft(R"({"__metadata__":{"k":3}})", 0), "__metadata__ value for 'k'", ""},
      {"bool_not_01", craft(R"({"flag":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", 0) + std::string("\x01\x07", 2),
       "byte value 7", "flag"},
  };
  // a truncated real file: the last tensor's bytes are cut
  auto real = models::safetensors_bytes(every_dtype(3));
  cases.push_back({"truncated", real.substr(0, real.size() - 3), "run past the end", ""});
  cases.push_back({"truncated_in_header", real.substr(0, 40), "exceeds the file", ""});

  // the good one loads
  auto g = write_bytes(d, "good.safetensors", good);
  EXPECT_EQ(models::load_safetensors(g).at("a").numel(), 2);
  for (auto& c : cases) {
    auto p = write_bytes(d, c.name + ".safetensors", c.bytes);
    std::string msg = load_error(p);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(p), std::string::npos) << c.name << " does not name the file: " << msg;
    if (!c.tensor.empty()) {
      EXPECT_NE(msg.find("'" + c.tensor + "'"), std::string::npos) << c.name << " does not name the tensor: " << msg;
    }
    // the header-only reader refuses the same files (bool content is checked only when loading)
    if (c.name != "bool_not_01") {
      EXPECT_THROW(models::read_safetensors_header(p), core::Error) << c.name;
    }
  }
}

TEST(Safetensors, GapsAndZeroSizeTensorsAreAccepted) {
  auto d = testutil::fresh_dir("st_gaps");
  // alignment padding between tensors (8 unused bytes) and two empty tensors at the same offset
  std::string json =
      R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"e1":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
      R"("e2":{"dtype":"F32","shape":[3,0],"data_offsets":[4,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[12,16]}})";
  std::string bytes = craft(json, 0);
  int32_t a = 123456, b = -7;
  bytes.append(reinterpret_cast<const char*>(&a), 4);
  bytes.append(8, '\xff');
  bytes.append(reinterpret_cast<const char*>(&b), 4);
  auto t = models::load_safetensors(write_bytes(d, "gaps.safetensors", bytes));
  EXPECT_EQ(t.at("a").item<int32_t>(), a);
  EXPECT_EQ(t.at("b").item<int32_t>(), b);
  EXPECT_EQ(t.at("e2").sizes(), (std::vector<int64_t>{3, 0}));
}

TEST(Safetensors, WriterRefusesWhatTheFormatCannotHold) {
  auto d = testutil::fresh_dir("st_writer");
  TensorMap t{{"c", torch::zeros({2}, torch::kComplexFloat)}};
  try {
    models::save_safetensors(d + "/x.safetensors", t);
    FAIL() << "complex dtype accepted";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'c'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(models::save_safetensors(d + "/y.safetensors", {{"__metadata__", torch::zeros({1})}}), core::Error);
  EXPECT_THROW(models::load_safetensors(d + "/missing.safetensors"), core::Error);
}
