// The bad-input matrix (tests/BAD_INPUTS.md): each case feeds the `shiftlab` binary one broken
// input — corrupt images, malformed weights, bad configs, broken datasets, an unwritable run
// directory, a full disk during a checkpoint — and checks the contract users rely on:
//   * a non-zero exit code (2 for usage errors, 1 for runtime failures), never a signal;
//   * stderr is exactly ONE line, "shiftlab: error: ...", naming the culprit (file, key, line);
//   * no half-written output: no temp files left, no output file for a failed conversion, a failed
//     run marked "failed" in its summary.json.
// Every case is its own test (ctest runs them in parallel). Cases that other test files already
// cover are listed in BAD_INPUTS.md with a pointer to their test instead of being repeated here.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <regex>

#include "core/fs.h"
#include "data/decode.h"
#include "data/npy.h"
#include "models/backbones.h"
#include "models/safetensors.h"
#include "models/weights.h"
#include "support/testing.h"

using namespace shiftlab;
namespace fs = std::filesystem;
using testutil::CliResult;

namespace {

// ------------------------------------------------------------------ writers of small files

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string le16(uint16_t v) { return {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)}; }
std::string le32(uint32_t v) { return le16(static_cast<uint16_t>(v & 0xffff)) + le16(static_cast<uint16_t>(v >> 16)); }

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

std::string png_chunk(const std::string& type, const std::string& data) {
  return be32(static_cast<uint32_t>(data.size())) + type + data + be32(crc32(type + data));
}

// An 8-bit grey PNG of w×h (rows of `value`), its IDAT a zlib stream of stored blocks. The IHDR
// may claim other dimensions (claim_w/h) than the pixel data holds.
std::string png_grey(uint32_t w, uint32_t h, uint8_t value = 100, uint32_t claim_w = 0, uint32_t claim_h = 0) {
  std::string raw;
  for (uint32_t y = 0; y < h; ++y) raw += '\0' + std::string(w, static_cast<char>(value));  // filter 0
  std::string z = "\x78\x01";
  z += '\x01' + le16(static_cast<uint16_t>(raw.size())) + le16(static_cast<uint16_t>(~raw.size())) + raw;
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  z += be32((b << 16) | a);
  std::string ihdr = be32(claim_w ? claim_w : w) + be32(claim_h ? claim_h : h) + std::string("\x08\x00\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", z) + png_chunk("IEND", "");
}

// A little-endian strip TIFF of w×h×1 samples of `bits` bits (sample format 1 = unsigned).
std::string tiff_grey(uint32_t w, uint32_t h, uint16_t bits = 8) {
  std::string pixels(static_cast<size_t>(w) * h * (bits / 8), '\x40');
  const uint32_t ifd = 8 + static_cast<uint32_t>(pixels.size());
  struct E {
    uint16_t tag, type;
    uint32_t count, value;
  };
  std::vector<E> es = {{256, 4, 1, w}, {257, 4, 1, h}, {258, 3, 1, bits}, {259, 3, 1, 1}, {262, 3, 1, 1},
                       {273, 4, 1, 8}, {277, 3, 1, 1}, {278, 4, 1, h}, {279, 4, 1, static_cast<uint32_t>(pixels.size())},
                       {339, 3, 1, 1}};
  std::string t = std::string("II*\0", 4) + le32(ifd) + pixels + le16(static_cast<uint16_t>(es.size()));
  for (auto& e : es) t += le16(e.tag) + le16(e.type) + le32(e.count) + le32(e.value);
  return t + le32(0);
}

std::string jpeg_rgb(int64_t w, int64_t h, const std::string& dir) {
  data::Image im = data::Image::make_u8(h, w, 3);
  for (size_t i = 0; i < im.u8.size(); ++i) im.u8[i] = static_cast<uint8_t>((i * 37) % 251);
  auto p = dir + "/tmp.jpg";
  data::write_jpeg(p, im, 90);
  auto bytes = core::read_file(p);
  fs::remove(p);
  return bytes;
}

// A safetensors file image from header JSON text and a data section of `data_bytes` zero bytes;
// the length field says `claim` (default: the header's true length).
std::string safetensors_raw(const std::string& json, size_t data_bytes, uint64_t claim = 0) {
  std::string h = json;
  while (h.size() % 8) h += ' ';
  uint64_t n = claim ? claim : h.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + h + std::string(data_bytes, '\0');
}

// ------------------------------------------------------------------ a tiny npy experiment

// Images n×h×w uint8 (a class-dependent pattern) and int64 labels label(i).
void npy_images(const std::string& path, int64_t n, int64_t h = 12, int64_t w = 12) {
  std::vector<uint8_t> px(static_cast<size_t>(n * h * w));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 7 + (i / static_cast<size_t>(h * w)) * 31) % 256);
  data::write_npy(path, "u1", {n, h, w}, px.data(), px.size());
}
void npy_labels(const std::string& path, const std::vector<int64_t>& labels) {
  data::write_npy(path, "i8", {static_cast<int64_t>(labels.size())}, labels.data(), labels.size() * 8);
}
std::vector<int64_t> cycle(int64_t n, int64_t k) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i % k;
  return v;
}

// A valid experiment in `d`: 16 source and 16 target images of 4 classes; train arguments that
// run 2 steps of LeNet. Cases break one piece of it.
std::vector<std::string> experiment(const std::string& d) {
  if (!fs::exists(d + "/src.npy")) {
    npy_images(d + "/src.npy", 16);
    npy_labels(d + "/src_labels.npy", cycle(16, 4));
    npy_images(d + "/tgt.npy", 16);
    npy_labels(d + "/tgt_labels.npy", cycle(16, 4));
  }
  return {"train",
          "--run.root=" + d + "/runs",
          "--run.name=t",
          "--run.threads=1",
          "--run.log_level=error",
          "--data.source.dataset=npy",
          "--data.source.root=" + d + "/src.npy",
          "--data.source.labels=" + d + "/src_labels.npy",
          "--data.source.transform=resize(28)",
          "--data.source.batch_size=8",
          "--data.source.workers=0",
          "--data.target.dataset=npy",
          "--data.target.root=" + d + "/tgt.npy",
          "--data.target.labels=" + d + "/tgt_labels.npy",
          "--data.target.transform=resize(28)",
          "--data.target.batch_size=8",
          "--data.target.workers=0",
          "--data.source.val_fraction=0.25",  // npy has no splits: held-out roles (data/roles.h)
          "--data.target.test_fraction=0.25",
          "--model.backbone=lenet",
          "--model.in_channels=1",
          "--method=source_only",
          "--train.steps=2",
          "--train.eval_every=2",
          "--eval.workers=0",
          "--eval.batch_size=16"};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// `data stats` over an image folder holding one class with `file` (and a good image beside it).
std::vector<std::string> image_folder_with(const std::string& d, const std::string& name, const std::string& bytes) {
  write(d + "/img/a/good.png", png_grey(6, 5));
  write(d + "/img/a/" + name, bytes);
  return {"data", "stats", "--data.dataset=image_folder", "--data.root=" + d + "/img", "--stats.workers=1"};
}

// ------------------------------------------------------------------ the cases

struct Case {
  std::string name;
  /// Writes the inputs into the case directory, returns the arguments of `shiftlab`.
  std::function<std::vector<std::string>(const std::string& dir)> setup;
  int exit_code;
  /// Must appear in the error line (the culprit); "{dir}" stands for the case directory.
  std::string expect;
  long long file_size_limit = -1;
  /// Extra checks of what is left on disk (no half-written output).
  std::function<void(const std::string& dir)> after = nullptr;
};

std::string only_run_dir(const std::string& runs) {
  std::vector<std::string> dirs;
  if (fs::exists(runs + "/t"))
    for (auto& e : fs::directory_iterator(runs + "/t")) dirs.push_back(e.path().string());
  return dirs.size() == 1 ? dirs[0] : "";
}

// A failed run is marked failed and keeps no partial checkpoint.
void run_marked_failed(const std::string& d) {
  auto run = only_run_dir(d + "/runs");
  ASSERT_FALSE(run.empty()) << "no single run directory under " << d << "/runs";
  auto s = nlohmann::json::parse(core::read_file(run + "/summary.json"));
  EXPECT_EQ(s["status"], "failed") << s.dump();
  EXPECT_TRUE(s.contains("error")) << s.dump();
}

// The lock a test holds in place of another process (resume_while_running).
std::unique_ptr<core::FileLock>& held_lock() {
  static std::unique_ptr<core::FileLock> l;
  return l;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = [] {
    std::vector<Case> c;
    // --- images (data stats decodes every item; on_error = fail)
    c.push_back({"jpeg_truncated",
                 [](const std::string& d) {
                   auto j = jpeg_rgb(32, 24, d);
                   return image_folder_with(d, "cut.jpg", j.substr(0, j.size() / 2));
                 },
                 1, "corrupt JPEG '{dir}/img/a/cut.jpg'"});
    c.push_back({"jpeg_garbage",
                 [](const std::string& d) {
                   return image_folder_with(d, "junk.jpg", std::string("\xff\xd8\xff\xe0", 4) + std::string(300, '\x5a'));
                 },
                 1, "corrupt JPEG '{dir}/img/a/junk.jpg'"});
    c.push_back({"jpeg_bomb_dimensions",
                 [](const std::string& d) {
                   auto j = jpeg_rgb(16, 16, d);
                   auto sof = j.find("\xff\xc0");  // SOF0: FF C0, length(2), precision(1), height(2), width(2)
                   j[sof + 5] = j[sof + 7] = '\xfd';  // 64,784 × 64,784 from a 1 KB file
                   j[sof + 6] = j[sof + 8] = '\x10';
                   return image_folder_with(d, "bomb.jpg", j);
                 },
                 1, "JPEG '{dir}/img/a/bomb.jpg': 64784×64784×3 exceeds the limit"});
    c.push_back({"png_truncated",
                 [](const std::string& d) {
                   auto p = png_grey(40, 30);
                   return image_folder_with(d, "cut.png", p.substr(0, p.size() / 2));
                 },
                 1, "corrupt PNG '{dir}/img/a/cut.png'"});
    c.push_back({"png_bad_crc",
                 [](const std::string& d) {
                   auto p = png_grey(8, 8);
                   p[p.find("IDAT") + 10] ^= 0x55;
                   return image_folder_with(d, "crc.png", p);
                 },
                 1, "corrupt PNG '{dir}/img/a/crc.png'"});
    c.push_back({"png_bomb_dimensions",
                 [](const std::string& d) { return image_folder_with(d, "bomb.png", png_grey(4, 4, 9, 900000, 900000)); },
                 1, "corrupt PNG '{dir}/img/a/bomb.png': image dimensions exceed the sample limit"});
    c.push_back({"tiff_truncated",
                 [](const std::string& d) {
                   auto t = tiff_grey(20, 20);
                   return image_folder_with(d, "cut.tif", t.substr(0, t.size() - 200));
                 },
                 1, "TIFF '{dir}/img/a/cut.tif'"});
    c.push_back({"tiff_unsupported_samples",
                 [](const std::string& d) { return image_folder_with(d, "u32.tif", tiff_grey(4, 4, 32)); }, 1,
                 "unsupported TIFF '{dir}/img/a/u32.tif': 32-bit samples of format 1"});
    c.push_back({"not_an_image",
                 [](const std::string& d) { return image_folder_with(d, "notes.jpg", "just some text\n"); }, 1,
                 "'{dir}/img/a/notes.jpg': not a JPEG, PNG or TIFF image"});
    c.push_back({"wrong_band_count",
                 [](const std::string& d) {
                   // RGB JPEGs into LeNet built for 1 band
                   for (int k = 0; k < 2; ++k)
                     for (int i = 0; i < 3; ++i)
                       write(d + "/rgb/c" + std::to_string(k) + "/" + std::to_string(i) + ".jpg", jpeg_rgb(12, 12, d));
                   auto a = experiment(d);
                   for (auto& x : a) {
                     if (x.rfind("--data.source.root=", 0) == 0) x = "--data.source.root=" + d + "/rgb";
                     if (x.rfind("--data.source.dataset=", 0) == 0) x = "--data.source.dataset=image_folder";
                   }
                   a.erase(std::remove_if(a.begin(), a.end(),
                                          [](const std::string& x) { return x.rfind("--data.source.labels=", 0) == 0; }),
                           a.end());
                   return with(a, {"--data.target.dataset=image_folder", "--data.target.root=" + d + "/rgb"});
                 },
                 1, "3 bands", -1, run_marked_failed});
    // --- weights
    c.push_back({"safetensors_header_length_beyond_file",
                 [](const std::string& d) {
                   write(d + "/w.safetensors", safetensors_raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, 1000));
                   return std::vector<std::string>{"weights", "info", d + "/w.safetensors"};
                 },
                 1, "'{dir}/w.safetensors': safetensors header length 1000 exceeds the file"});
    c.push_back({"safetensors_header_length_terabytes",
                 [](const std::string& d) {
                   write(d + "/w.safetensors",
                         safetensors_raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, 1ull << 42));
                   return std::vector<std::string>{"weights", "info", d + "/w.safetensors"};
                 },
                 1, "'{dir}/w.safetensors': safetensors header length 4398046511104 exceeds the file"});
    c.push_back({"safetensors_offsets_overlap",
                 [](const std::string& d) {
                   write(d + "/w.safetensors",
                         safetensors_raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                         12));
                   return std::vector<std::string>{"weights", "info", d + "/w.safetensors"};
                 },
                 1, "tensors 'a' [0, 8) and 'b' [4, 12) overlap"});
    c.push_back({"safetensors_offsets_past_end",
                 [](const std::string& d) {
                   write(d + "/w.safetensors", safetensors_raw(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8));
                   return std::vector<std::string>{"weights", "info", d + "/w.safetensors"};
                 },
                 1, "tensor 'w': data_offsets [4, 12] run past the end of the 8-byte data section"});
    c.push_back({"safetensors_unknown_dtype",
                 [](const std::string& d) {
                   write(d + "/w.safetensors", safetensors_raw(R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8));
                   return std::vector<std::string>{"weights", "info", d + "/w.safetensors"};
                 },
                 1, "tensor 'w': unknown dtype 'F33'"});
    c.push_back({"safetensors_shape_claims_terabytes",
                 [](const std::string& d) {
                   write(d + "/w.safetensors",
                         safetensors_raw(R"({"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}})", 8));
                   return std::vector<std::string>{"weights", "info", d + "/w.safetensors"};
                 },
                 1, "tensor 'w': shape [1000000, 1000000] of F32 needs more bytes than the 8-byte data section holds"});
    c.push_back({"safetensors_convert_leaves_no_output",
                 [](const std::string& d) {
                   write(d + "/w.safetensors", safetensors_raw(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
                   return std::vector<std::string>{"weights", "convert", d + "/w.safetensors", d + "/out.safetensors"};
                 },
                 1, "'{dir}/w.safetensors'", -1,
                 [](const std::string& d) { EXPECT_FALSE(fs::exists(d + "/out.safetensors")); }});
    c.push_back({"weights_shape_mismatch",
                 [](const std::string& d) {
                   models::BackboneOptions bo;
                   bo.name = "lenet";
                   bo.in_channels = 1;
                   auto sd = models::state_dict(*models::make_backbone(bo));
                   // the first conv for 3 bands instead of 1
                   for (auto& [name, w] : sd)
                     if (w.dim() == 4 && w.size(1) == 1) {
                       auto sizes = w.sizes().vec();
                       sizes[1] = 3;
                       w = torch::zeros(sizes);
                       break;
                     }
                   models::save_safetensors(d + "/lenet3.safetensors", sd);
                   return with(experiment(d), {"--model.weights=" + d + "/lenet3.safetensors"});
                 },
                 1, "'{dir}/lenet3.safetensors'", -1, run_marked_failed});
    c.push_back({"pth_truncated_zip",
                 [](const std::string& d) {
                   auto z = core::read_file(testutil::source_path("fuzz/corpus/pth/ordered_zip.pth"));
                   write(d + "/w.pth", z.substr(0, z.size() * 2 / 3));
                   return std::vector<std::string>{"weights", "info", d + "/w.pth"};
                 },
                 1, "'{dir}/w.pth'"});
    c.push_back({"pth_garbage",
                 [](const std::string& d) {
                   write(d + "/w.pth", std::string("\x80\x02garbage that is no pickle", 27));
                   return std::vector<std::string>{"weights", "info", d + "/w.pth"};
                 },
                 1, "'{dir}/w.pth'"});
    // --- configuration
    c.push_back({"config_unknown_key",
                 [](const std::string& d) {
                   write(d + "/x.ini", "[train]\nlrr = 0.1\n");
                   return with(experiment(d), {"--config", d + "/x.ini"});
                 },
                 2, "unknown option 'train.lrr' ({dir}/x.ini)"});
    c.push_back({"config_ill_typed_value",
                 [](const std::string& d) {
                   write(d + "/x.ini", "[train]\nsteps = many\n");
                   return with(experiment(d), {"--config", d + "/x.ini"});
                 },
                 2, "option 'train.steps' ({dir}/x.ini): expected an integer, got 'many'"});
    c.push_back({"config_out_of_range",
                 [](const std::string& d) {
                   write(d + "/x.ini", "[optim]\nmomentum = 1.5\n");
                   return with(experiment(d), {"--config", d + "/x.ini"});
                 },
                 2, "option 'optim.momentum' ({dir}/x.ini): expected a number in [0, 1], got '1.5'"});
    c.push_back({"config_bad_choice",
                 [](const std::string& d) { return with(experiment(d), {"--optim.name=sgdd"}); }, 2,
                 "option 'optim.name' (command line): unknown value 'sgdd' — did you mean 'sgd'?"});
    c.push_back({"config_binary_file",
                 [](const std::string& d) {
                   write(d + "/x.ini", std::string("[train]\nsteps = 3\0\x01\x02", 20));
                   return with(experiment(d), {"--config", d + "/x.ini"});
                 },
                 2, "config file '{dir}/x.ini': NUL byte"});
    c.push_back({"config_unknown_key_command_line",
                 [](const std::string& d) { return with(experiment(d), {"--train.stpes=3"}); }, 2,
                 "unknown option 'train.stpes' — did you mean 'train.steps'?"});
    c.push_back({"config_missing_file",
                 [](const std::string& d) { return with(experiment(d), {"--config", d + "/nope.ini"}); }, 2,
                 "config file '{dir}/nope.ini' not found"});
    // --- datasets
    c.push_back({"empty_dataset",
                 [](const std::string& d) {
                   npy_images(d + "/empty.npy", 0);
                   npy_labels(d + "/empty_labels.npy", {});
                   return with(experiment(d), {"--data.target.root=" + d + "/empty.npy",
                                               "--data.target.labels=" + d + "/empty_labels.npy"});
                 },
                 1, "target dataset npy {dir}/empty.npy: 0 images"});
    c.push_back({"empty_list_file",
                 [](const std::string& d) {
                   write(d + "/list.txt", "# nothing here\n\n");
                   return with(experiment(d), {"--data.source.dataset=list_file", "--data.source.root=" + d,
                                               "--data.source.split=" + d + "/list.txt"});
                 },
                 1, "list file '{dir}/list.txt' lists no images"});
    c.push_back({"list_file_missing",
                 [](const std::string& d) {
                   return with(experiment(d), {"--data.source.dataset=list_file", "--data.source.root=" + d,
                                               "--data.source.split=nope.txt"});
                 },
                 1, "list file 'nope.txt' not found"});
    c.push_back({"class_count_mismatch",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   npy_labels(d + "/tgt6.npy", cycle(16, 6));
                   return with(a, {"--data.target.labels=" + d + "/tgt6.npy"});
                 },
                 1, "source and target disagree on the number of classes"});
    c.push_back({"label_out_of_range_list_file",
                 [](const std::string& d) {
                   write(d + "/x.png", png_grey(6, 6));
                   write(d + "/list.txt", "x.png 0\nx.png 1\nx.png 99999999\n");
                   return with(experiment(d), {"--data.source.dataset=list_file", "--data.source.root=" + d,
                                               "--data.source.split=" + d + "/list.txt"});
                 },
                 1, "'{dir}/list.txt' line 3: label 99999999 is out of range"});
    c.push_back({"label_negative_npy",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   auto l = cycle(16, 4);
                   l[5] = -3;
                   npy_labels(d + "/neg.npy", l);
                   return with(a, {"--data.source.labels=" + d + "/neg.npy"});
                 },
                 1, "'{dir}/neg.npy': label -3 of item 5 is out of range"});
    c.push_back({"source_val_labels_beyond_source_classes",
                 [](const std::string& d) {
                   write(d + "/x.png", png_grey(6, 6));
                   write(d + "/train.txt", "x.png 0\nx.png 1\nx.png 2\nx.png 3\n");
                   write(d + "/val.txt", "x.png 0\nx.png 7\n");
                   return with(experiment(d), {"--data.source.dataset=list_file", "--data.source.root=" + d,
                                               "--data.source.split=train.txt", "--data.source.val_split=val.txt",
                                               "--data.source.val_fraction=0"});
                 },
                 1, "list_file {dir}/val.txt"});
    // --- evaluation roles (data/roles.h)
    c.push_back({"no_held_out_set",
                 [](const std::string& d) { return with(experiment(d), {"--data.source.val_fraction=0"}); }, 2,
                 "source/val: npy data ({dir}/src.npy) has no splits, so there are no held-out source images", -1,
                 run_marked_failed});
    c.push_back({"target_test_unlabelled",
                 [](const std::string& d) {
                   for (int i = 0; i < 8; ++i) write(d + "/flat/" + std::to_string(i) + ".png", png_grey(12, 12, 40 + i));
                   return with(experiment(d), {"--data.target.dataset=image_folder", "--data.target.root=" + d + "/flat"});
                 },
                 2, "target/test (image_folder {dir}/flat: 8 images (flat, unlabelled)"});
    c.push_back({"oracle_without_target_labels",
                 [](const std::string& d) {
                   for (int i = 0; i < 8; ++i) write(d + "/flat/" + std::to_string(i) + ".png", png_grey(12, 12, 40 + i));
                   return with(experiment(d), {"--data.target.dataset=image_folder", "--data.target.root=" + d + "/flat",
                                               "--train.select=oracle"});
                 },
                 2, "train.select = oracle needs a labelled target/test"});
    c.push_back({"target_test_is_target_train",
                 [](const std::string& d) {
                   return with(experiment(d), {"--data.target.test_fraction=0", "--data.target_test.root=" + d + "/tgt.npy",
                                               "--method=dann"});
                 },
                 2, "target/test shares 16 of 16 images with target/train"});
    c.push_back({"class_names_differ",
                 [](const std::string& d) {
                   for (const char* cls : {"a/0", "a/1", "b/0", "b/1"}) write(d + "/src/" + cls + ".png", png_grey(12, 12, 90));
                   for (const char* cls : {"a/0", "a/1", "B/0", "B/1"}) write(d + "/tgt/" + cls + ".png", png_grey(12, 12, 90));
                   return with(experiment(d), {"--data.source.dataset=image_folder", "--data.source.root=" + d + "/src",
                                               "--data.target.dataset=image_folder", "--data.target.root=" + d + "/tgt"});
                 },
                 2, "target/train (image_folder {dir}/tgt: 4 images, 2 classes): class name(s) not among the source's "
                    "classes: 'B' — did you mean 'b'?"});
    c.push_back({"npy_truncated",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   auto b = core::read_file(d + "/src.npy");
                   write(d + "/cut.npy", b.substr(0, b.size() - 100));
                   return with(a, {"--data.source.root=" + d + "/cut.npy"});
                 },
                 1, "'{dir}/cut.npy': truncated .npy data"});
    c.push_back({"npy_bad_header",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   std::string h = "{'descr': <u1, 'fortran_order': False, 'shape': (3,), }\n";
                   write(d + "/bad.npy", std::string("\x93NUMPY\x01\x00", 8) + le16(static_cast<uint16_t>(h.size())) + h + "abc");
                   return with(a, {"--data.source.root=" + d + "/bad.npy"});
                 },
                 1, "'{dir}/bad.npy': cannot parse the .npy header"});
    // --- run directory and outputs
    c.push_back({"unwritable_run_directory",
                 [](const std::string& d) {
                   write(d + "/afile", "x");
                   return with(experiment(d), {"--run.root=" + d + "/afile"});
                 },
                 1, "cannot create run directory under '{dir}/afile/t'"});
    c.push_back({"disk_full_during_checkpoint",
                 [](const std::string& d) { return experiment(d); }, 1, "cannot write checkpoint '{dir}/runs/t/",
                 256 << 10,  // 256 KB per file: logs and metrics fit, a LeNet checkpoint does not
                 [](const std::string& d) {
                   run_marked_failed(d);
                   auto run = only_run_dir(d + "/runs");
                   EXPECT_FALSE(fs::exists(run + "/latest.pt"));
                   EXPECT_FALSE(fs::exists(run + "/best.pt"));
                   // metrics.jsonl holds whole lines only
                   auto m = core::read_file(run + "/metrics.jsonl");
                   EXPECT_TRUE(m.empty() || m.back() == '\n') << m;
                 }});
    c.push_back({"resume_without_checkpoint",
                 [](const std::string& d) {
                   auto r = testutil::run_cli(with(experiment(d), {"--train.steps=0", "--run.name=t0"}));
                   EXPECT_EQ(r.exit_code, 0) << r.err;
                   std::string run;
                   for (auto& e : fs::directory_iterator(d + "/runs/t0")) run = e.path().string();
                   fs::remove(run + "/latest.pt");
                   fs::rename(run, d + "/run0");
                   return std::vector<std::string>{"train", "--resume", d + "/run0", "--run.log_level=error"};
                 },
                 1, "cannot resume '{dir}/run0': no latest.pt checkpoint"});
    c.push_back({"resume_corrupt_checkpoint",
                 [](const std::string& d) {
                   auto r = testutil::run_cli(with(experiment(d), {"--train.steps=0", "--run.name=t0"}));
                   EXPECT_EQ(r.exit_code, 0) << r.err;
                   std::string run;
                   for (auto& e : fs::directory_iterator(d + "/runs/t0")) run = e.path().string();
                   auto ck = core::read_file(run + "/latest.pt");
                   write(run + "/latest.pt", ck.substr(0, ck.size() / 2));
                   fs::rename(run, d + "/run0");
                   return std::vector<std::string>{"train", "--resume", d + "/run0", "--run.log_level=error"};
                 },
                 1, "checkpoint '{dir}/run0/latest.pt' is not readable"});
    c.push_back({"resume_with_config_is_usage_error",
                 [](const std::string& d) {
                   write(d + "/x.ini", "[train]\nsteps = 3\n");
                   return std::vector<std::string>{"train", "--resume", d, "--config", d + "/x.ini"};
                 },
                 2, "--resume takes the run's own configuration; do not pass --config"});
    // --- labels (issue 18 §2): a float label, or an item without a label in a labelled domain, is
    // refused naming the file and the first bad row (−1 used to reach the loss and crash in torch)
    c.push_back({"label_not_integer_list_file",
                 [](const std::string& d) {
                   write(d + "/x.png", png_grey(6, 6));
                   write(d + "/list.txt", "x.png 0\nx.png 1\nx.png 1.5\n");
                   return with(experiment(d), {"--data.source.dataset=list_file", "--data.source.root=" + d,
                                               "--data.source.split=" + d + "/list.txt"});
                 },
                 1, "'{dir}/list.txt' line 3: label 1.5 is not an integer"});
    c.push_back({"label_missing_in_labelled_list_file",
                 [](const std::string& d) {
                   write(d + "/x.png", png_grey(6, 6));
                   write(d + "/list.txt", "x.png 0\n\nx.png\nx.png 1\n");
                   return with(experiment(d), {"--data.source.dataset=list_file", "--data.source.root=" + d,
                                               "--data.source.split=" + d + "/list.txt"});
                 },
                 1, "'{dir}/list.txt' line 3: no label"});
    c.push_back({"label_not_integer_npy",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   std::vector<float> l(16);
                   for (size_t i = 0; i < l.size(); ++i) l[i] = static_cast<float>(i % 4);
                   l[3] = 1.5f;
                   data::write_npy(d + "/f.npy", "f4", {16}, l.data(), l.size() * sizeof(float));
                   return with(a, {"--data.source.labels=" + d + "/f.npy"});
                 },
                 1, "'{dir}/f.npy': label 1.5 of item 3 is not an integer"});
    c.push_back({"label_missing_in_labelled_npy",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   auto l = cycle(16, 4);
                   l[2] = -1;
                   npy_labels(d + "/m1.npy", l);
                   return with(a, {"--data.source.labels=" + d + "/m1.npy"});
                 },
                 1, "'{dir}/m1.npy': label -1 of item 2 in a labelled domain"});
    c.push_back({"label_not_integer_digits_csv",
                 [](const std::string& d) {
                   std::string zeros;
                   for (int i = 0; i < 64; ++i) zeros += std::to_string(i % 17) + ",";
                   write(d + "/d.csv", zeros + "0\n" + zeros + "1.5\n" + zeros + "1\n");
                   return with(experiment(d), {"--data.source.dataset=digits_csv", "--data.source.root=" + d + "/d.csv"});
                 },
                 1, "'{dir}/d.csv' row 2: label 1.5 is not an integer"});
    c.push_back({"label_missing_in_labelled_digits_csv",
                 [](const std::string& d) {
                   std::string zeros;
                   for (int i = 0; i < 64; ++i) zeros += std::to_string(i % 17) + ",";
                   write(d + "/d.csv", zeros + "0\n" + zeros + "1\n" + zeros + "-1\n");
                   return with(experiment(d), {"--data.source.dataset=digits_csv", "--data.source.root=" + d + "/d.csv"});
                 },
                 1, "'{dir}/d.csv': label -1 of row 3 in a labelled domain"});
    c.push_back({"label_not_bytes_idx",
                 [](const std::string& d) {
                   // IDX images 16×12×12 (type 0x08) and labels stored as floats (type 0x0D)
                   std::string im = std::string("\0\0\x08\x03", 4) + be32(16) + be32(12) + be32(12) + std::string(16 * 144, '\x40');
                   std::string lab = std::string("\0\0\x0d\x01", 4) + be32(16) + std::string(16 * 4, '\0');
                   write(d + "/img.idx", im);
                   write(d + "/lab.idx", lab);
                   return with(experiment(d), {"--data.source.dataset=idx", "--data.source.root=" + d + "/img.idx",
                                               "--data.source.labels=" + d + "/lab.idx"});
                 },
                 1, "'{dir}/lab.idx': only unsigned-byte IDX data (type 0x08) is supported"});
    // --- images and transforms (issue 18 §3)
    c.push_back({"transform_size_too_large",
                 [](const std::string& d) { return with(experiment(d), {"--data.source.transform=center_crop(100000)"}); },
                 2, "center_crop: size 100000 exceeds 16384 pixels"});
    c.push_back({"npy_zero_size_images",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   npy_images(d + "/z.npy", 16, 0, 0);
                   return with(a, {"--data.source.root=" + d + "/z.npy"});
                 },
                 1, "npy {dir}/z.npy: 16 images 0×0×1: images of 0×0×1"});
    c.push_back({"mixed_image_sizes",
                 [](const std::string& d) {
                   // 4 classes (as the target) of 4 images; three of class c0 are 9 px wide, so whichever
                   // item the 25 % source/val hold-out takes, the training images differ in size
                   // (resize(28) keeps the aspect)
                   for (int k = 0; k < 4; ++k)
                     for (int i = 0; i < 4; ++i)
                       write(d + "/img/c" + std::to_string(k) + "/" + std::to_string(i) + ".png",
                             png_grey(k == 0 && i > 0 ? 9 : 6, 6));
                   auto a = experiment(d);
                   for (auto& x : a) {
                     if (x.rfind("--data.source.root=", 0) == 0) x = "--data.source.root=" + d + "/img";
                     if (x.rfind("--data.source.dataset=", 0) == 0) x = "--data.source.dataset=image_folder";
                     if (x.rfind("--data.source.labels=", 0) == 0) x = "--data.source.labels=";
                   }
                   return a;
                 },
                 1, "source images differ in size without a resize: '{dir}/img/c0/", -1, run_marked_failed});
    c.push_back({"npy_nan_pixels",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   std::vector<float> px(16 * 12 * 12, 0.5f);
                   px[3 * 144 + 5 * 12 + 7] = std::nanf("");
                   data::write_npy(d + "/nan.npy", "f4", {16, 12, 12}, px.data(), px.size() * sizeof(float));
                   return with(a, {"--data.source.root=" + d + "/nan.npy"});
                 },
                 1, "'{dir}/nan.npy': image 3 holds nan at y 5, x 7, band 0"});
    c.push_back({"npy_layout_ambiguous",
                 [](const std::string& d) {
                   auto a = experiment(d);
                   std::vector<uint8_t> px(16 * 8 * 8 * 13, 7);
                   data::write_npy(d + "/amb.npy", "u1", {16, 8, 8, 13}, px.data(), px.size());
                   return with(a, {"--data.source.root=" + d + "/amb.npy"});
                 },
                 2, "'{dir}/amb.npy': cannot tell the layout of a 16×8×8×13 image array"});
    // --- configuration, weights, run directories (issue 18 §3)
    c.push_back({"config_is_directory",
                 [](const std::string& d) {
                   fs::create_directories(d + "/cfgdir");
                   return with(experiment(d), {"--config", d + "/cfgdir"});
                 },
                 2, "config file '{dir}/cfgdir' is a directory"});
    c.push_back({"weights_convert_onto_input",
                 [](const std::string& d) {
                   write(d + "/w.pth", core::read_file(testutil::source_path("fuzz/corpus/pth/ordered_zip.pth")));
                   return std::vector<std::string>{"weights", "convert", d + "/w.pth", d + "/./w.pth"};
                 },
                 2, "OUT '{dir}/./w.pth' is the input file", -1,
                 [](const std::string& d) {
                   EXPECT_EQ(core::read_file(d + "/w.pth"),
                             core::read_file(testutil::source_path("fuzz/corpus/pth/ordered_zip.pth")));
                 }});
    c.push_back({"resume_while_running",
                 [](const std::string& d) {
                   auto r = testutil::run_cli(with(experiment(d), {"--train.steps=0", "--run.name=t0"}));
                   EXPECT_EQ(r.exit_code, 0) << r.err;
                   std::string run;
                   for (auto& e : fs::directory_iterator(d + "/runs/t0")) run = e.path().string();
                   fs::rename(run, d + "/run0");
                   // this test process plays the run still training in that directory
                   held_lock() = std::make_unique<core::FileLock>(
                       core::FileLock::acquire(d + "/run0/run.lock", "run directory"));
                   return std::vector<std::string>{"train", "--resume", d + "/run0", "--run.log_level=error"};
                 },
                 1, "run directory '{dir}/run0' is in use by another process (pid ", -1,
                 [](const std::string& d) {
                   held_lock().reset();
                   auto s = nlohmann::json::parse(core::read_file(d + "/run0/summary.json"));
                   EXPECT_EQ(s["status"], "completed") << "the refused resume must not touch the run: " << s.dump();
                 }});
    return c;
  }();
  return all;
}

std::string substitute(std::string s, const std::string& dir) {
  for (size_t p; (p = s.find("{dir}")) != std::string::npos;) s.replace(p, 5, dir);
  return s;
}

// gtest prints the case by its name (not as bytes)
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class BadInput : public ::testing::TestWithParam<Case> {};

TEST_P(BadInput, OneLineErrorNonZeroExitNoCrashNoHalfWrittenOutput) {
  const Case& c = GetParam();
  auto dir = fs::canonical(testutil::fresh_dir("bad_input_" + c.name)).string();
  auto args = c.setup(dir);
  testutil::CliOptions o;
  o.file_size_limit = c.file_size_limit;
  CliResult r = testutil::run_cli_with(args, o);
  std::cout << "[ stderr   ] " << r.err;  // the line users see, in the test log
  EXPECT_EQ(r.signal, 0) << c.name << " crashed with signal " << r.signal << ": " << r.err;
  EXPECT_EQ(r.exit_code, c.exit_code) << c.name << ": " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.name << ": stderr is not one line:\n" << r.err;
  EXPECT_EQ(r.err.rfind("shiftlab: error: ", 0), 0u) << c.name << ": " << r.err;
  auto want = substitute(c.expect, dir);
  EXPECT_NE(r.err.find(want), std::string::npos) << c.name << ": expected '" << want << "' in: " << r.err;
  // no temp file of an atomic write survives anywhere below the case directory
  for (auto& e : fs::recursive_directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << c.name << ": left " << e.path();
  if (c.after) c.after(dir);
}

INSTANTIATE_TEST_SUITE_P(Matrix, BadInput, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// BAD_INPUTS.md lists every case of this file (and the cases covered elsewhere): the table and
// the tests cannot drift apart.
TEST(BadInputTable, ListsEveryCase) {
  auto doc = core::read_file(testutil::source_path("tests/BAD_INPUTS.md"));
  for (auto& c : cases()) EXPECT_NE(doc.find("`" + c.name + "`"), std::string::npos) << c.name << " is not in BAD_INPUTS.md";
  // and every case the table names as run here exists
  std::regex row("\\| `([a-z0-9_]+)` \\| test_bad_inputs");
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), row); it != std::sregex_iterator(); ++it) {
    std::string name = (*it)[1];
    bool found = false;
    for (auto& c : cases()) found = found || c.name == name;
    EXPECT_TRUE(found) << "BAD_INPUTS.md names " << name << ", which test_bad_inputs.cpp does not run";
  }
}

}  // namespace
