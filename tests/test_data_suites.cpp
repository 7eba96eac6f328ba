// Shift suites (`data prepare rotated-mnist | colored-mnist | mnist-c | fashion-c | fashion-sketch`):
// the C++ transformations against an independent reference (tests/suites_reference.py: PIL's
// rotate for Rotated MNIST, numpy + a pure-Python xoshiro256** for the corruptions and sketches),
// Colored MNIST's label-noise and colour-flip rates against the specified ones, manifest SHA-256s
// re-computed by Python, determinism across two roots, seed bookkeeping, and `split = 45/train`.
#include "data/suites.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "data/datasets.h"
#include "data/prepare.h"
#include "data_test_util.h"

using namespace shiftlab;
using namespace shiftlab::testutil;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string suites_source_cache() {
  std::string d = std::string(SHIFTLAB_TEST_TMP) + "/../test-cache/sources";
  fs::create_directories(d);
  return d;
}

data::PrepareOptions suites_options(const std::string& root, int64_t limit = 0) {
  data::PrepareOptions o;
  o.root = root;
  o.sources = suites_source_cache();
  o.limit = limit;
  return o;
}

/// Prepares `name`, printing the time taken.
data::PrepareResult suites_prepare(const std::string& name, const data::PrepareOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = data::prepare_dataset(name, o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ info ] prepare " << name << (o.limit ? " (limit " + std::to_string(o.limit) + ")" : "") << ": " << s
            << " s\n";
  return r;
}

/// tests/suites_reference.py check ROOT NAME K -> its JSON report.
json suites_reference(const std::string& root, const std::string& name, int k) {
  std::string out;
  int rc = run_shell("/usr/bin/python3 " + source_path("tests/suites_reference.py") + " check " + root + " " + name + " " +
                         std::to_string(k),
                     &out);
  EXPECT_EQ(rc, 0) << out;
  auto nl = out.rfind('\n', out.size() >= 2 ? out.size() - 2 : 0);
  std::string last = out.substr(nl == std::string::npos ? 0 : nl + 1);
  try {
    return json::parse(last);
  } catch (const std::exception&) {
    ADD_FAILURE() << "reference output is not JSON: " << out;
    return json::object();
  }
}

void suites_expect_files_ok(const json& rep) {
  EXPECT_TRUE(rep["sha_bad"].empty()) << rep["sha_bad"].dump();
  EXPECT_TRUE(rep["shape_bad"].empty()) << rep["shape_bad"].dump();
  EXPECT_GT(rep["files"].get<int>(), 0);
}

data::DatasetPtr suites_domain(const std::string& root, const std::string& dataset, const std::string& split) {
  data::DomainOptions d;
  d.dataset = dataset;
  d.root = root;
  d.split = split;
  return data::make_domain(d);
}

std::string suites_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const core::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DataSuites, TransformsOnSyntheticImages) {
  std::vector<uint8_t> img(6 * 6);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>(i * 7);
  // rotation: 0 degrees is the identity, 90 degrees maps pixel centres exactly (counter-clockwise)
  EXPECT_EQ(data::suites::rotate_pil_bilinear(img.data(), 6, 6, 0), img);
  auto r90 = data::suites::rotate_pil_bilinear(img.data(), 6, 6, 90);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) EXPECT_EQ(r90[static_cast<size_t>(y * 6 + x)], img[static_cast<size_t>(x * 6 + (5 - y))]) << y << "," << x;
  // inversion at severity 5 is the negative; contrast of a constant image is the image
  auto neg = data::suites::corrupt("inversion", 5, img.data(), 6, 6, 0);
  for (size_t i = 0; i < img.size(); ++i) EXPECT_EQ(neg[i], 255 - img[i]);
  std::vector<uint8_t> flat(36, 77);
  EXPECT_EQ(data::suites::corrupt("contrast", 5, flat.data(), 6, 6, 0), flat);
  EXPECT_EQ(data::suites::corrupt("gaussian_blur", 5, flat.data(), 6, 6, 0), flat);
  EXPECT_EQ(data::suites::sketch(flat.data(), 6, 6), std::vector<uint8_t>(36, 255));  // no edges: white
  // seeded: the same seed gives the same image, another seed another one
  for (const auto& c : data::suites::corruption_names()) {
    for (int s = 1; s <= 5; ++s) {
      auto a = data::suites::corrupt(c, s, img.data(), 6, 6, 42), b = data::suites::corrupt(c, s, img.data(), 6, 6, 42);
      EXPECT_EQ(a, b) << c << s;
      EXPECT_TRUE(data::suites::corruption_params(c, s).contains("formula"));
    }
  }
  EXPECT_NE(data::suites::corrupt("gaussian_noise", 3, img.data(), 6, 6, 1),
            data::suites::corrupt("gaussian_noise", 3, img.data(), 6, 6, 2));
  EXPECT_THROW(data::suites::corrupt("fog", 1, img.data(), 6, 6, 0), core::UsageError);
  EXPECT_THROW(data::suites::corrupt("contrast", 6, img.data(), 6, 6, 0), core::UsageError);
}

TEST(DataSuites, RotatedMnistEqualsPilRotateAndDomainsResolve) {
  REQUIRE_PYTHON({"numpy", "PIL"});
  std::string root = fresh_dir("suites_rotated");
  auto o = suites_options(root);
  auto r = suites_prepare("rotated-mnist", o);
  EXPECT_FALSE(r.already_prepared);
  const auto& m = r.manifest;
  EXPECT_EQ(m["total"].get<int64_t>(), 10000);
  EXPECT_EQ(m["suite"]["domains"].get<std::vector<std::string>>(),
            std::vector<std::string>({"0", "15", "30", "45", "60", "75"}));
  for (auto d : {"0", "45", "75"}) {
    int64_t n = 0;
    for (auto s : {"train", "val", "test"}) n += m["splits"][std::string(d) + "/" + s]["count"].get<int64_t>();
    EXPECT_TRUE(n == 1666 || n == 1667) << d << ": " << n;  // 10,000 digits in 6 disjoint domains
  }
  // Python: every file's SHA-256 and shape, the first 25 items of each split against PIL's rotate,
  // labels and disjointness
  auto rep = suites_reference(root, "rotated-mnist", 25);
  suites_expect_files_ok(rep);
  EXPECT_LE(rep["max_diff"].get<int>(), 1) << rep.dump();
  EXPECT_LT(rep["pixels_differing"].get<double>(), 1e-3 * rep["pixels"].get<double>()) << rep.dump();
  EXPECT_EQ(rep["labels_wrong"].get<int>(), 0);
  EXPECT_EQ(rep["items"].get<int>(), 10000);
  EXPECT_EQ(rep["distinct_items"].get<int>(), 10000);
  // a domain names a member: split = 45/train
  auto ds = suites_domain(root, "rotated-mnist", "45/train");
  EXPECT_EQ(static_cast<int64_t>(ds->size()), m["splits"]["45/train"]["count"].get<int64_t>());
  EXPECT_EQ(ds->num_classes(), 10);
  EXPECT_EQ(ds->get(0, 0).image.sizes().vec(), std::vector<int64_t>({1, 28, 28}));
  auto all = suites_domain(root, "rotated-mnist", "45/all");
  EXPECT_EQ(static_cast<int64_t>(all->size()), m["splits"]["45/train"]["count"].get<int64_t>() +
                                                   m["splits"]["45/val"]["count"].get<int64_t>() +
                                                   m["splits"]["45/test"]["count"].get<int64_t>());
  EXPECT_NE(suites_error([&] { suites_domain(root, "rotated-mnist", "train"); }).find("DOMAIN/SPLIT"), std::string::npos);
  EXPECT_NE(suites_error([&] { suites_domain(root, "rotated-mnist", "50/train"); }).find("no domain '50'"), std::string::npos);
  EXPECT_NE(suites_error([&] { suites_domain(root, "rotated-mnist", "45/dev"); }).find("no split 'dev'"), std::string::npos);
  // re-run verifies; another root gives byte-identical files; another seed others; a seed that
  // differs from the prepared one is refused
  EXPECT_TRUE(data::prepare_dataset("rotated-mnist", o).already_prepared);
  auto o2 = suites_options(fresh_dir("suites_rotated2"));
  EXPECT_EQ(data::prepare_dataset("rotated-mnist", o2).manifest["files"], m["files"]);
  auto o3 = o;
  o3.seed = 1;
  EXPECT_NE(suites_error([&] { data::prepare_dataset("rotated-mnist", o3); }).find("data.seed"), std::string::npos);
  o3.root = fresh_dir("suites_rotated3");
  auto r3 = data::prepare_dataset("rotated-mnist", o3);
  EXPECT_NE(r3.manifest["files"]["45/train_images.npy"], m["files"]["45/train_images.npy"]);
  EXPECT_EQ(r3.manifest["derivation"]["seed"].get<uint64_t>(), 1u);
  // provenance: the npm tarball's SHA-256 is among the sources
  bool tgz = false;
  for (auto& s : m["sources"]) tgz |= s["sha256"] == "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390";
  EXPECT_TRUE(tgz) << m["sources"].dump();
}

TEST(DataSuites, ColoredMnistRatesAndChannels) {
  REQUIRE_PYTHON({"numpy"});
  std::string root = fresh_dir("suites_colored");
  auto r = suites_prepare("colored-mnist", suites_options(root));
  EXPECT_EQ(r.manifest["total"].get<int64_t>(), 10000);
  EXPECT_EQ(r.manifest["channels"].get<int64_t>(), 2);
  auto rep = suites_reference(root, "colored-mnist", 0);
  suites_expect_files_ok(rep);
  EXPECT_EQ(rep["bad_images"].get<int>(), 0);  // the colour channel holds the digit, the other is 0
  // ~3,333 items per domain: binomial sd <= 0.0075; tolerance 0.03 (4 sd)
  for (auto [dom, e] : std::vector<std::pair<std::string, double>>{{"0.1", 0.1}, {"0.2", 0.2}, {"0.9", 0.9}}) {
    const auto& x = rep["rates"][dom];
    EXPECT_NEAR(x["label_noise"].get<double>(), 0.25, 0.03) << dom;
    EXPECT_NEAR(x["colour_flip"].get<double>(), e, 0.03) << dom;
    EXPECT_GE(x["n"].get<int>(), 3333);
  }
  auto ds = suites_domain(root, "colored-mnist", "0.9/test");
  EXPECT_EQ(ds->num_classes(), 2);
  auto s = ds->get(0, 0);
  EXPECT_EQ(s.image.sizes().vec(), std::vector<int64_t>({2, 28, 28}));
  // exactly one channel is non-zero
  EXPECT_TRUE((s.image[0].sum().item<double>() == 0) != (s.image[1].sum().item<double>() == 0));
}

TEST(DataSuites, MnistCorruptionsEqualNumpyReference) {
  REQUIRE_PYTHON({"numpy"});
  std::string root = fresh_dir("suites_mnist_c");
  auto r = suites_prepare("mnist-c", suites_options(root, 30));
  EXPECT_EQ(r.manifest["suite"]["domains"].size(), data::suites::corruption_names().size() * 5);
  EXPECT_EQ(r.manifest["splits"]["gaussian_noise-3/test"]["count"].get<int64_t>(), 30);
  EXPECT_EQ(r.manifest["splits"]["elastic-2/test"]["params"]["alpha"].get<double>(), 16.0);
  auto rep = suites_reference(root, "mnist-c", 30);
  suites_expect_files_ok(rep);
  EXPECT_LE(rep["max_diff"].get<int>(), 1) << rep.dump();
  EXPECT_LT(rep["pixels_differing"].get<double>(), 1e-3 * rep["pixels"].get<double>()) << rep.dump();
  EXPECT_EQ(rep["labels_wrong"].get<int>(), 0);
  // severity grades the change from the clean image
  for (auto& [c, v] : rep["mean_abs_change"].items()) {
    auto a = v.get<std::vector<double>>();
    ASSERT_EQ(a.size(), 5u);
    EXPECT_GT(a[0], 0.0) << c;
    EXPECT_GT(a[4], a[0]) << c;
  }
  auto ds = suites_domain(root, "mnist-c", "contrast-5/test");
  EXPECT_EQ(ds->size(), 30u);
  EXPECT_NE(suites_error([&] { suites_domain(root, "mnist-c", "contrast-5/train"); }).find("known: test"), std::string::npos);
}

TEST(DataSuites, FashionSketchAndCorruptionsEqualNumpyReference) {
  REQUIRE_PYTHON({"numpy"});
  std::string root = fresh_dir("suites_fashion");
  auto sk = suites_prepare("fashion-sketch", suites_options(root, 12));
  EXPECT_FALSE(sk.manifest.contains("suite"));
  EXPECT_EQ(sk.manifest["splits"]["test"]["count"].get<int64_t>(), 12);
  auto rep = suites_reference(root, "fashion-sketch", 12);
  suites_expect_files_ok(rep);
  EXPECT_LE(rep["max_diff"].get<int>(), 1) << rep.dump();
  EXPECT_EQ(rep["labels_wrong"].get<int>(), 0);
  EXPECT_EQ(rep["index_wrong"].get<int>(), 0);
  auto ds = suites_domain(root, "fashion-sketch", "test");
  EXPECT_EQ(ds->size(), 12u);
  auto fc = suites_prepare("fashion-c", suites_options(root, 8));
  auto rep2 = suites_reference(root, "fashion-c", 8);
  suites_expect_files_ok(rep2);
  EXPECT_LE(rep2["max_diff"].get<int>(), 1) << rep2.dump();
  EXPECT_EQ(rep2["labels_wrong"].get<int>(), 0);
}

TEST(DataSuites, CliPreparesAndConfigTrainsZeroToFortyFive) {
  std::string root = fresh_dir("suites_cli");
  auto r = run_cli({"data", "prepare", "rotated-mnist", "--data.root=" + root, "--data.sources=" + suites_source_cache()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("  45: train "), std::string::npos) << r.out;
  // the example config trains source-only 0 -> 45 degrees (a few steps here)
  const auto runs = fresh_dir("suites_cli_runs");
  auto t = run_cli({"train", "--config", source_path("configs/digits/rotated_mnist_0_to_45.ini"), "--run.root=" + runs,
                    "--run.threads=1", "--run.log_level=warn", "--data.source.root=" + root, "--data.target.root=" + root,
                    "--data.source.workers=1", "--data.target.workers=1", "--eval.workers=1", "--train.steps=4",
                    "--train.eval_every=0"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  std::string run = only_run(runs, "rotated_mnist");
  auto s = run_summary(run);
  EXPECT_EQ(s["status"], "completed");
}
