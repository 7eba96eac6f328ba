// Feature cache and `shiftlab extract` on real tiny data (UCI digits from Debian's sklearn,
// ResNet-18 at 32 px with seeded weights saved as safetensors): the file read back by h5py
// (scripts/features_h5_dump.py) against features computed here through forward_features, float16
// and avg+max pooling, read_block, resume after SIGKILL (inside a write, and at random moments)
// ending with the same content as an uninterrupted run, provenance mismatch refused, bad files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/options.h"
#include "data/datasets.h"
#include "data/npy.h"
#include "data/options.h"
#include "features/cache.h"
#include "features/extract.h"
#include "models/backbones.h"
#include "models/safetensors.h"
#include "models/weights.h"
#include "support/testing.h"

using namespace shiftlab;
namespace fs = std::filesystem;
using testutil::run_cli;

namespace {

const char* kTransform = "resize(32), normalize(0.5, 0.5)";
constexpr int64_t kRows = 150;

struct Fixture {
  std::string data, w1, w2;
};

const Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    auto dir = testutil::fresh_dir("features");
    x.data = dir + "/data";
    auto res = run_cli({"data", "prepare", "uci-digits", "--data.root=" + x.data});
    EXPECT_EQ(res.exit_code, 0) << res.err;
    for (int s : {1, 2}) {
      torch::manual_seed(s);
      models::BackboneOptions bo;
      bo.name = "resnet18";
      bo.in_channels = 1;
      auto bb = models::make_backbone(bo);
      // non-trivial BatchNorm statistics so eval mode matters
      for (auto& kv : bb->named_buffers())
        if (kv.key().find("running_mean") != std::string::npos) kv.value().uniform_(-0.1, 0.1);
      auto p = dir + "/w" + std::to_string(s) + ".safetensors";
      models::save_safetensors(p, models::state_dict(*bb));
      (s == 1 ? x.w1 : x.w2) = p;
    }
    return x;
  }();
  return f;
}

std::vector<std::string> args(const std::string& out, const std::vector<std::string>& extra = {}) {
  const auto& f = fixture();
  std::vector<std::string> a{"extract",
                             out,
                             "--run.threads=1",
                             "--run.log_level=warn",
                             "--model.backbone=resnet18",
                             "--model.in_channels=1",
                             "--model.weights=" + f.w1,
                             "--data.source.dataset=uci-digits",
                             "--data.source.root=" + f.data,
                             std::string("--data.source.transform=") + kTransform,
                             "--data.target.dataset=uci-digits",
                             "--data.target.root=" + f.data,
                             std::string("--data.target.transform=") + kTransform,
                             "--source_splits=train",
                             "--target_splits=test",
                             "--limit=" + std::to_string(kRows),
                             "--batch_size=32",
                             "--workers=1"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

nlohmann::json h5py_dump(const std::string& cache, const std::string& dir) {
  std::string out;
  int rc = testutil::run_shell("/usr/bin/python3 " + testutil::source_path("scripts/features_h5_dump.py") + " " +
                                   cache + " " + dir,
                               &out);
  EXPECT_EQ(rc, 0) << out;
  return nlohmann::json::parse(core::read_file(dir + "/summary.json"));
}

torch::Tensor npy(const std::string& path) {
  auto a = data::read_npy(path);
  auto t = torch::empty(a.shape, torch::kFloat32);
  for (int64_t i = 0; i < a.numel(); ++i) t.data_ptr<float>()[i] = static_cast<float>(a.get_double(static_cast<size_t>(i)));
  return t;
}

torch::Tensor block_tensor(const features::FeatureBlock& b) {
  // Eigen column-major rows_done x D -> torch row-major
  auto t = torch::from_blob(const_cast<float*>(b.X.data()), {b.X.cols(), b.X.rows()}, torch::kFloat32);
  return t.t().contiguous();
}

/// Reference: the first kRows images of uci-digits `split` through resnet18 forward_features.
std::map<std::string, torch::Tensor> reference(const std::string& split, const std::vector<std::string>& taps) {
  models::BackboneOptions bo;
  bo.name = "resnet18";
  bo.in_channels = 1;
  auto bb = models::make_backbone(bo);
  models::load_state_dict(*bb, models::load_weights_file(fixture().w1));
  bb->eval();
  torch::NoGradGuard ng;
  data::DomainOptions d;
  d.dataset = "uci-digits";
  d.root = fixture().data;
  d.split = split;
  d.transform = kTransform;
  auto ds = data::make_domain(d);
  std::vector<torch::Tensor> xs;
  for (int64_t i = 0; i < kRows; ++i) xs.push_back(ds->get(static_cast<size_t>(i), 0).image);
  return bb->forward_features(torch::stack(xs), taps);
}

double maxdiff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e9;
  if (a.numel() == 0) return 0;
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST(Features, H5pySchemaAndValuesMatchForwardFeatures) {
  REQUIRE_PYTHON({"h5py", "numpy"});
  auto dir = testutil::fresh_dir("features_schema");
  auto cache = dir + "/c.h5";
  auto r = run_cli(args(cache, {"--taps=layer2,layer3,pooled"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = h5py_dump(cache, dir + "/dump");
  // root attributes
  auto& root = s["root"];
  EXPECT_EQ(root["format"], "shiftlab-features");
  EXPECT_EQ(root["format_version"], 1);
  EXPECT_EQ(root["backbone"], "resnet18");
  EXPECT_EQ(root["weights_sha256"], core::sha256_file(fixture().w1));
  EXPECT_EQ(root["num_classes"], 10);
  for (auto k : {"weights", "checkpoint", "shiftlab_version", "created", "config", "model"}) EXPECT_TRUE(root.contains(k)) << k;
  EXPECT_NE(root["config"].get<std::string>().find("resnet18"), std::string::npos);
  // the recorded configuration is INI that reads back (advise builds its train config from it)
  std::map<std::string, std::string> recorded;
  for (auto& e : core::parse_ini_text(root["config"].get<std::string>(), "cache config")) recorded[e.key] = e.value;
  EXPECT_EQ(recorded["model.backbone"], "resnet18");
  EXPECT_EQ(recorded["model.in_channels"], "1");
  EXPECT_EQ(recorded["data.target.transform"], kTransform);
  // groups and taps
  ASSERT_EQ(s["groups"].size(), 2u);
  ASSERT_EQ(s["taps"].size(), 6u);
  for (auto split : {"train", "test"}) {
    std::string dom = std::string(split) == "train" ? "source" : "target";
    auto& g = s["groups"][dom + "/" + split];
    EXPECT_EQ(g["attrs"]["rows"], kRows);
    EXPECT_EQ(g["attrs"]["transform"], kTransform);
    EXPECT_EQ(g["attrs"]["num_classes"], 10);
    EXPECT_EQ(g["labels_dtype"], "int64");
    data::DomainOptions d;
    d.dataset = "uci-digits";
    d.root = fixture().data;
    d.split = split;
    auto labels = data::make_domain(d)->labels();
    for (int64_t i = 0; i < kRows; ++i) {
      ASSERT_EQ(g["labels"][i].get<int64_t>(), labels[static_cast<size_t>(i)]);
      ASSERT_EQ(g["index"][i].get<int64_t>(), i);
    }
    EXPECT_EQ(g["paths"].size(), static_cast<size_t>(kRows));
    auto ref = reference(split, {"layer2", "layer3", "pooled"});
    for (auto tap : {"layer2", "layer3", "pooled"}) {
      std::string key = dom + "/" + split + "/" + tap;
      auto& t = s["taps"][key];
      EXPECT_EQ(t["dtype"], "float32") << key;
      EXPECT_TRUE(t["compression"].is_null()) << key;
      EXPECT_FALSE(t["chunks"].is_null()) << key;
      EXPECT_EQ(t["attrs"]["rows_done"], kRows);
      EXPECT_EQ(t["attrs"]["pool"], "avg");
      EXPECT_EQ(t["attrs"]["tap"], tap);
      auto x = npy(dir + "/dump/" + dom + "__" + split + "__" + tap + ".npy");
      auto want = ref.at(tap).dim() == 4 ? ref.at(tap).mean({2, 3}) : ref.at(tap);
      EXPECT_LT(maxdiff(x, want), 1e-4) << key;
      // the reader API returns exactly what h5py sees
      auto b = features::read_block(cache, dom, split, tap);
      EXPECT_EQ(maxdiff(block_tensor(b), x), 0.0) << key;
      EXPECT_EQ(b.num_classes, 10);
      ASSERT_EQ(b.labels.size(), static_cast<size_t>(kRows));
      EXPECT_EQ(b.labels[7], labels[7]);
    }
  }
  auto entries = features::list_cache(cache);
  ASSERT_EQ(entries.size(), 6u);
  for (auto& e : entries) {
    EXPECT_TRUE(e.complete());
    EXPECT_EQ(e.dtype, "float32");
    EXPECT_EQ(e.rows, kRows);
  }
  auto a = features::cache_attributes(cache);
  EXPECT_EQ(a["backbone"], "resnet18");
  EXPECT_EQ(a["num_classes"], 10);
  // a second identical run resumes with nothing to do and leaves the content unchanged
  auto before = block_tensor(features::read_block(cache, "target", "test", "layer3"));
  auto r2 = run_cli(args(cache, {"--taps=layer2,layer3,pooled"}));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_NE(r2.out.find("0 rows in"), std::string::npos) << r2.out;
  EXPECT_EQ(maxdiff(block_tensor(features::read_block(cache, "target", "test", "layer3")), before), 0.0);
}

TEST(Features, Float16AvgMaxAndHeadTaps) {
  REQUIRE_PYTHON({"h5py", "numpy"});
  auto dir = testutil::fresh_dir("features_f16");
  auto cache = dir + "/c.h5";
  auto r = run_cli(args(cache, {"--taps=layer3,logits", "--pool=avgmax", "--dtype=float16", "--target_splits=val"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = h5py_dump(cache, dir + "/dump");
  auto& t = s["taps"]["source/train/layer3"];
  EXPECT_EQ(t["dtype"], "float16");
  EXPECT_EQ(t["attrs"]["dtype"], "float16");
  EXPECT_EQ(t["attrs"]["pool"], "avgmax");
  EXPECT_EQ(t["shape"][1], 512);  // [mean, max] of 256 channels
  auto ref = reference("train", {"layer3"}).at("layer3");
  auto want = torch::cat({ref.mean({2, 3}), ref.amax({2, 3})}, 1);
  auto x = npy(dir + "/dump/source__train__layer3.npy");
  // float16: relative step 2^-11 of the value
  auto tol = (want.abs() * (1.0 / 1024) + 1e-4);
  EXPECT_TRUE(((x - want).abs() <= tol).all().item<bool>()) << maxdiff(x, want);
  EXPECT_EQ(maxdiff(block_tensor(features::read_block(cache, "source", "train", "layer3")), x), 0.0);
  EXPECT_EQ(s["taps"]["source/train/logits"]["shape"][1], 10);
  EXPECT_TRUE(s["groups"].contains("target/val"));
}

TEST(Features, ForwardTapsMatchClassifierForward) {
  torch::manual_seed(3);
  models::BackboneOptions bo;
  bo.name = "resnet18";
  bo.in_channels = 1;
  models::HeadOptions ho;
  ho.type = "bottleneck";
  ho.bottleneck_dim = 16;
  models::Classifier m(models::make_backbone(bo), ho, 5);
  for (auto& kv : m->named_buffers())
    if (kv.key().find("running_var") != std::string::npos) kv.value().uniform_(0.5, 2.0);
  m->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({3, 1, 32, 32});
  auto want = m->forward(x, {"layer1", "layer4"});
  auto got = features::forward_taps(*m, x, {"layer1", "layer4", "features", "logits", "pooled"}, "avg");
  EXPECT_EQ(maxdiff(got.at("layer1"), want.taps.at("layer1")), 0.0);
  EXPECT_EQ(maxdiff(got.at("layer4"), want.taps.at("layer4")), 0.0);
  EXPECT_EQ(maxdiff(got.at("features"), want.features), 0.0);
  EXPECT_EQ(maxdiff(got.at("logits"), want.logits), 0.0);
  EXPECT_EQ(got.at("pooled").size(1), 512);
}

TEST(Features, ResumeAfterSigkillEqualsUninterrupted) {
  auto dir = testutil::fresh_dir("features_resume");
  auto ref = dir + "/ref.h5", cut = dir + "/cut.h5";
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  ASSERT_EQ(run_cli(args(ref, {"--taps=layer3,pooled", "--dtype=float16"})).exit_code, 0);
  auto t1 = clock::now();
  // killed inside the 3rd write: data handed to HDF5, not yet flushed or counted
  testutil::CliOptions kill_in_3rd_write;
  kill_in_3rd_write.env["SHIFTLAB_TEST_KILL_IN_WRITE"] = "3";
  auto r = testutil::run_cli_with(args(cut, {"--taps=layer3,pooled", "--dtype=float16"}), kill_in_3rd_write);
  auto t2 = clock::now();
  ASSERT_EQ(r.exit_code, 128 + SIGKILL) << r.err;
  // this machine's start-up time S (the killed run barely started) and full-run time T
  const double T = std::chrono::duration<double>(t1 - t0).count(), S = std::chrono::duration<double>(t2 - t1).count();
  auto entries = features::list_cache(cut);
  ASSERT_EQ(entries.size(), 4u);
  for (auto& e : entries) EXPECT_EQ(e.rows_done, e.domain == "source" ? 64 : 0) << e.domain << "/" << e.tap;
  auto part = features::read_block(cut, "source", "train", "layer3");
  auto full = features::read_block(ref, "source", "train", "layer3");
  ASSERT_EQ(part.X.rows(), 64);
  EXPECT_EQ(maxdiff(block_tensor(part), block_tensor(full).slice(0, 0, 64)), 0.0);
  // kills at moments timed from S and T, adapted until kWanted of them land mid-extraction (the
  // killed run had written rows, but not all): every state a kill leaves opens and holds exactly
  // the reference's first rows_done rows, and each rerun continues from it (rows never go back).
  // A kill that came too early (nothing new written) is retried later; a run that finished before
  // its kill starts over from an empty file with an earlier kill.
  const int kWanted = 2, kAttempts = 12;
  const int64_t all_rows = 4 * kRows;
  int64_t last = 64;
  int mid = 0, too_early = 0, too_late = 0, attempts = 0;
  double frac = 0.35;
  for (; mid < kWanted && attempts < kAttempts; ++attempts) {
    const double when = S + frac * std::max(0.0, T - S);
    std::string cmd = "timeout -s KILL " + std::to_string(when) + " " + SHIFTLAB_BIN;
    for (auto& a : args(cut, {"--taps=layer3,pooled", "--dtype=float16", "--batch_size=8"})) cmd += " '" + a + "'";
    std::string out;
    const int rc = testutil::run_shell(cmd, &out);
    ASSERT_TRUE(rc == 0 || rc == 128 + SIGKILL) << "exit " << rc << " after a kill at " << when << " s: " << out;
    int64_t done = 0;  // no file yet: killed before the first block was created (atomically)
    for (auto& e : fs::exists(cut) ? features::list_cache(cut) : std::vector<features::CacheEntry>{}) {
      done += e.rows_done;
      auto b = features::read_block(cut, e.domain, e.split, e.tap);
      auto w = block_tensor(features::read_block(ref, e.domain, e.split, e.tap)).slice(0, 0, e.rows_done);
      EXPECT_EQ(maxdiff(block_tensor(b), w), 0.0) << "after a kill at " << when << " s: " << e.domain << "/" << e.tap;
    }
    EXPECT_GE(done, last) << "the rerun lost rows (kill at " << when << " s)";
    if (rc == 0 || done == all_rows) {
      EXPECT_EQ(done, all_rows) << "a run that exited 0 left rows undone";
      ++too_late;
      fs::remove(cut);
      last = 0;
      frac *= 0.5;
      continue;
    }
    if (done == last) {
      ++too_early;
      frac += (1 - frac) * 0.5;
      continue;
    }
    ++mid;
    last = done;
  }
  std::cout << "[ info ] S " << S << " s, T " << T << " s; " << mid << " kills landed mid-extraction, " << too_early
            << " too early, " << too_late << " too late, in " << attempts << " attempts\n";
  EXPECT_GE(mid, kWanted) << "the timed kills never caught the extraction mid-way: the states after a kill were not "
                             "exercised (S " << S << " s, T " << T << " s)";
  auto fin = run_cli(args(cut, {"--taps=layer3,pooled", "--dtype=float16", "--batch_size=20"}));
  ASSERT_EQ(fin.exit_code, 0) << fin.err;
  for (auto& e : features::list_cache(ref)) {
    auto a = features::read_block(ref, e.domain, e.split, e.tap);
    auto b = features::read_block(cut, e.domain, e.split, e.tap);
    ASSERT_EQ(b.X.rows(), kRows);
    EXPECT_EQ(maxdiff(block_tensor(a), block_tensor(b)), 0.0) << e.domain << "/" << e.tap;
    EXPECT_EQ(a.labels, b.labels);
  }
  // a new tap is added to the complete file (through a copy), the old ones untouched
  auto add = run_cli(args(cut, {"--taps=layer2", "--dtype=float16"}));
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_EQ(features::list_cache(cut).size(), 6u);
  EXPECT_EQ(maxdiff(block_tensor(features::read_block(cut, "target", "test", "pooled")),
                    block_tensor(features::read_block(ref, "target", "test", "pooled"))),
            0.0);
}

TEST(Features, ProvenanceMismatchRefused) {
  auto dir = testutil::fresh_dir("features_prov");
  auto cache = dir + "/c.h5";
  ASSERT_EQ(run_cli(args(cache, {"--limit=40"})).exit_code, 0);
  auto expect_refused = [](const std::string& err, const std::string& attr) {
    auto msg = testutil::chomp(err);
    EXPECT_EQ(msg.find('\n'), std::string::npos) << err;
    EXPECT_NE(msg.find("different " + attr + " "), std::string::npos) << err;
  };
  // through the command: other weights, other transform
  for (auto& [extra, attr] : std::vector<std::pair<std::string, std::string>>{
           {"--model.weights=" + fixture().w2, "weights_sha256"},
           {"--data.target.transform=resize(28), pad(2), normalize(0.5, 0.5)", "transform"}}) {
    auto r = run_cli(args(cache, {extra, "--limit=40"}));
    EXPECT_EQ(r.exit_code, 2) << attr << ": " << r.err;
    expect_refused(r.err, attr);
  }
  // through the writer: the same layout and provenance reopen; any changed part is refused
  features::CacheLayout layout;
  layout.taps = {{"pooled", 512}};
  features::CacheBlock b;
  b.domain = "source";
  b.split = "train";
  b.transform = kTransform;
  b.labels = features::read_block(cache, "source", "train", "pooled").labels;
  b.index.resize(b.labels.size());
  layout.blocks = {b};
  auto attrs = features::cache_attributes(cache);
  features::Provenance prov;
  for (auto k : {"backbone", "model", "weights_sha256", "checkpoint_sha256"})
    prov.compared.emplace_back(k, attrs[k].get<std::string>());
  { features::CacheWriter ok(cache, layout, prov); EXPECT_EQ(ok.resume_row(0), 40); }
  auto refused = [&](features::CacheLayout l, features::Provenance p, const std::string& attr) {
    try {
      features::CacheWriter w(cache, l, p);
      ADD_FAILURE() << attr << ": not refused";
    } catch (const core::UsageError& e) {
      expect_refused(e.what(), attr);
    }
  };
  auto l = layout;
  l.dtype = "float16";
  refused(l, prov, "dtype");
  l = layout;
  l.pool = "avgmax";
  refused(l, prov, "pool");
  l = layout;
  l.taps[0].dim = 256;
  refused(l, prov, "feature width");
  auto p = prov;
  p.compared[1].second += "model.small_stem = true\n";
  refused(layout, p, "model");
  p = prov;
  p.compared[3].second = "abc";
  refused(layout, p, "checkpoint_sha256");
  // --overwrite replaces the file
  auto r = run_cli(args(cache, {"--limit=40", "--model.weights=" + fixture().w2, "--overwrite=true"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(features::cache_attributes(cache)["weights_sha256"], core::sha256_file(fixture().w2));
}

TEST(Features, BadFilesGiveOneLineErrors) {
  REQUIRE_PYTHON({"h5py", "numpy"});
  auto dir = testutil::fresh_dir("features_bad");
  auto text = dir + "/notes.h5";
  std::ofstream(text) << "not an HDF5 file\n";
  try {
    features::list_cache(text);
    ADD_FAILURE() << "no error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an HDF5 file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
  auto other = dir + "/other.h5";
  std::string out;
  ASSERT_EQ(testutil::run_shell("/usr/bin/python3 -c \"import h5py; h5py.File('" + other + "', 'w')['x'] = [1, 2]\"", &out), 0)
      << out;
  EXPECT_THROW(
      {
        try {
          features::read_block(other, "source", "train", "pooled");
        } catch (const core::Error& e) {
          EXPECT_NE(std::string(e.what()).find("not a shiftlab feature cache"), std::string::npos) << e.what();
          throw;
        }
      },
      core::Error);
  EXPECT_THROW(features::list_cache(dir + "/missing.h5"), core::Error);
  // the CLI refuses to write into a file that is not a cache
  auto r = run_cli(args(text, {"--limit=10"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(testutil::chomp(r.err).find('\n'), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not an HDF5 file"), std::string::npos) << r.err;
  // a missing block is named, with the blocks that exist
  auto cache = dir + "/c.h5";
  ASSERT_EQ(run_cli(args(cache, {"--limit=10"})).exit_code, 0);
  try {
    features::read_block(cache, "target", "test", "layer9");
    ADD_FAILURE() << "no error";
  } catch (const core::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("target/test/layer9"), std::string::npos) << m;
    EXPECT_NE(m.find("source/train/pooled"), std::string::npos) << m;
  }
  // an unknown tap is a usage error naming it
  auto u = run_cli(args(dir + "/u.h5", {"--taps=layer9"}));
  EXPECT_EQ(u.exit_code, 2);
  EXPECT_NE(u.err.find("layer9"), std::string::npos) << u.err;
}

// The reader on a file image in memory equals the reader on the file; attributes and extents the
// file merely claims are refused before they are used (an int attribute of 2 elements used to be
// read into one int64 on the stack; rows_done beyond what is stored used to be allocated).
TEST(Features, CacheImageAndMalformedAttributes) {
  auto seed = testutil::source_path("fuzz/corpus/h5_cache/f32_complete.h5");
  auto image = core::read_file(seed);
  auto mem = features::CacheReader::from_image(image, "image.h5");
  auto listed = mem.list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].rows, 3);
  EXPECT_EQ(listed[0].rows_done, 3);
  EXPECT_EQ(listed[0].dim, 4);
  auto a = mem.read("source", "train", "pooled");
  auto b = features::read_block(seed, "source", "train", "pooled");
  EXPECT_TRUE(a.X == b.X);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(mem.attributes(), features::cache_attributes(seed));
  EXPECT_THROW(features::CacheReader::from_image(image.substr(0, image.size() / 2), "half.h5"), core::Error);
  EXPECT_THROW(features::CacheReader::from_image("not hdf5 at all", "text.h5"), core::Error);

  REQUIRE_PYTHON({"h5py", "numpy"});
  auto dir = testutil::fresh_dir("features_malformed_attrs");
  std::string out;
  ASSERT_EQ(testutil::run_shell(
                "cd " + dir + " && /usr/bin/python3 -c \"\nimport h5py, numpy as np\n"
                "def base(p):\n"
                "    f = h5py.File(p, 'w'); f.attrs['format'] = 'shiftlab-features'; return f\n"
                "f = base('vector.h5'); f.attrs['format_version'] = np.array([1, 1], dtype=np.int64); f.close()\n"
                "f = base('claims.h5'); f.attrs['format_version'] = np.int64(1)\n"
                "g = f.create_group('source/train'); g.create_dataset('labels', data=np.zeros(100000, np.int64))\n"
                "d = g.create_dataset('pooled/features', shape=(100000, 64), dtype=np.float32, chunks=(16, 64))\n"
                "d[0:16] = 1; d.attrs['rows_done'] = np.int64(100000); f.close()\n\"",
                &out),
            0)
      << out;
  try {
    features::list_cache(dir + "/vector.h5");
    ADD_FAILURE() << "no error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("attribute 'format_version' is not a scalar"), std::string::npos) << e.what();
  }
  auto entries = features::list_cache(dir + "/claims.h5");
  ASSERT_EQ(entries.size(), 1u);
  try {
    features::read_block(dir + "/claims.h5", "source", "train", "pooled");
    ADD_FAILURE() << "no error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("but the file stores"), std::string::npos) << e.what();
  }
}
