// `shiftlab probe` / `shiftlab advise`: probe_cache on a cache built with the writer API (linear
// probe vs scikit-learn, A-distance, report files, tap order), and both commands end to end.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "features/cache.h"
#include "features/writer.h"
#include "probe/analysis.h"
#include "support/svg_check.h"
#include "support/testing.h"

using namespace shiftlab;
namespace fs = std::filesystem;
using testutil::run_cli;

namespace {

constexpr int K = 3, D = 8;

/// A cache in the extract schema: source train/val/test and target train / test, all labelled (as
/// extract writes them) while the recorded config declares the target unlabelled; taps layer10, layer2 (less separable), pooled and logits (K source-model scores).
/// Target rows are offset by `shift` along the last feature, which carries no class information
/// (separable domains when large, while the classes stay where they were).
std::string make_cache(const std::string& path, double shift, uint64_t seed = 1, const std::string& source_ds = "mnist",
                       const std::string& target_ds = "uci-digits", const std::string& config = "",
                       int few_per_class = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  Eigen::MatrixXf centres(K, D);
  for (int k = 0; k < K; ++k)
    for (int d = 0; d < D; ++d) centres(k, d) = d == D - 1 ? 0.f : nd(rng);
  features::CacheLayout layout;
  layout.taps = {{"layer10", D}, {"layer2", D}, {"pooled", D}, {"logits", K}};
  struct Spec {
    const char* domain;
    const char* split;
    int rows;
    bool labelled;
  };
  // few_per_class > 0: a few-label study's cache (source train and val with that many rows per
  // class, no source test)
  const std::vector<Spec> specs =
      few_per_class > 0 ? std::vector<Spec>{{"source", "train", K * few_per_class, true},
                                            {"source", "val", K * few_per_class, true},
                                            {"target", "train", 150, true},
                                            {"target", "test", 90, true}}
                        : std::vector<Spec>{{"source", "train", 240, true},
                                            {"source", "val", 60, true},
                                            {"source", "test", 90, true},
                                            {"target", "train", 150, true},
                                            {"target", "test", 90, true}};
  std::vector<std::vector<int64_t>> truth;
  for (auto& s : specs) {
    features::CacheBlock b;
    b.domain = s.domain;
    b.split = s.split;
    b.dataset = std::string("synthetic-") + s.domain + " split " + s.split;  // as extract describes a split
    b.num_classes = K;
    std::vector<int64_t> y;
    for (int i = 0; i < s.rows; ++i) {
      y.push_back(few_per_class > 0 && std::string(s.domain) == "source" ? i % K : static_cast<int64_t>(rng() % K));
      b.labels.push_back(s.labelled ? y.back() : -1);
      b.index.push_back(i);
    }
    truth.push_back(y);
    layout.blocks.push_back(b);
  }
  features::Provenance prov;
  prov.compared = {{"backbone", "lenet"}, {"model", "lenet"}, {"weights_sha256", ""}, {"checkpoint_sha256", ""}};
  prov.info = {{"config", !config.empty() ? config
                                          : "[model]\nbackbone = lenet\nin_channels = 1\n\n[data.source]\ndataset = mnist\n"
                                            "transform = normalize(0.5, 0.5)\n\n[data.target]\ndataset = uci-digits\nlabelled = false\n"},
               {"source_dataset", source_ds},
               {"target_dataset", target_ds}};
  prov.info_int = {{"num_classes", K}};
  features::CacheWriter w(path, layout, prov, true);
  for (size_t bi = 0; bi < specs.size(); ++bi) {
    const auto& y = truth[bi];
    const int n = specs[bi].rows;
    const bool target = std::string(specs[bi].domain) == "target";
    std::map<std::string, torch::Tensor> feats;
    for (auto [tap, sep] : std::vector<std::pair<std::string, float>>{{"layer10", 1.2f}, {"layer2", 0.6f}, {"pooled", 2.5f}}) {
      auto t = torch::empty({n, D});
      for (int i = 0; i < n; ++i)
        for (int d = 0; d < D; ++d)
          t[i][d] = centres(y[static_cast<size_t>(i)], d) * sep + nd(rng) +
                    (target && d == D - 1 ? static_cast<float>(shift) : 0.f);
      feats[tap] = t;
    }
    auto z = torch::empty({n, K});
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < K; ++k) z[i][k] = (k == y[static_cast<size_t>(i)] ? 2.f : 0.f) + nd(rng);
    feats["logits"] = z;
    w.write(bi, 0, feats);
  }
  w.close();
  return path;
}

class ProbeCli : public ::testing::Test {
 protected:
  // a directory per test: ctest runs the tests of this file as parallel processes
  void SetUp() override {
    dir_ = testutil::fresh_dir(std::string("probe_cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    far_ = make_cache(dir_ + "/far.h5", 6.0);
  }
  static probe::ProbeOptions fast_options() {
    probe::ProbeOptions o;
    o.tsne_rows = 120;
    o.tsne_opts.iterations = 300;
    o.knn_k = 5;
    return o;
  }
  std::string dir_, far_;
};

}  // namespace

TEST(ProbeOrder, NaturalSortPoolingAndLogitsLast) {
  EXPECT_EQ(probe::order_taps({"pooled", "layer10", "logits", "layer2", "features", "stem", "conv1", "layer2"}),
            (std::vector<std::string>{"stem", "conv1", "layer2", "layer10", "pooled", "features", "logits"}));
  EXPECT_EQ(probe::order_taps({"blocks.11", "blocks.2", "blocks.0"}),
            (std::vector<std::string>{"blocks.0", "blocks.2", "blocks.11"}));
}

TEST_F(ProbeCli, ProbeCacheMatchesSklearnAndSeparatesTheDomains) {
  auto o = fast_options();
  o.linear.Cs = {1.0};  // no sweep: the probe trains on all of source/train, as the reference
  o.linear.fit.tol = 1e-8;
  o.linear.fit.ftol = 0;
  o.linear.fit.max_iter = 2000;
  auto r = probe::probe_cache(far_, o);
  ASSERT_EQ(r.taps.size(), 4u);
  std::vector<std::string> names;
  for (auto& t : r.taps) names.push_back(t.tap);
  EXPECT_EQ(names, (std::vector<std::string>{"layer2", "layer10", "pooled", "logits"}));
  EXPECT_EQ(r.source_name, "mnist");
  EXPECT_EQ(r.target_name, "uci-digits");
  const auto& pooled = r.taps[2];
  EXPECT_EQ(pooled.dim, D);
  EXPECT_EQ(pooled.num_classes, K);
  EXPECT_EQ(pooled.source_train_rows, 240);
  EXPECT_EQ(pooled.target_rows, 150);
  ASSERT_TRUE(pooled.source_acc && pooled.target_acc);
  EXPECT_TRUE(pooled.target_target_acc.has_value());  // trained on target/train, tested on target/test
  ASSERT_TRUE(pooled.a_distance.has_value());
  EXPECT_GT(pooled.a_distance->a_distance, 1.9) << "error " << pooled.a_distance->error;
  EXPECT_GT(*pooled.mmd2, 0.0);
  EXPECT_TRUE(pooled.knn_source_acc && pooled.knn_target_acc);
  EXPECT_TRUE(pooled.logme && pooled.h_score);
  EXPECT_EQ(pooled.scores_on, "target");
  EXPECT_GT(pooled.source_acc.value(), r.taps[0].source_acc.value());  // deeper = more separable here
  EXPECT_TRUE(r.leep && r.nce) << r.leep_note;
  ASSERT_TRUE(r.tsne.has_value());
  EXPECT_EQ(r.tsne->tap, "pooled");  // deepest tap other than logits
  EXPECT_EQ(r.tsne->Y.rows(), 120);

  REQUIRE_PYTHON({"sklearn", "numpy", "h5py"});
  std::string taps, out;
  for (auto& t : r.taps) taps += (taps.empty() ? "" : ",") + t.tap;
  int rc = testutil::run_shell(
      "/usr/bin/python3 " + testutil::source_path("scripts/probe_cache_reference.py") + " " + far_ + " " + taps + " 1.0 2>&1",
      &out);
  ASSERT_EQ(rc, 0) << out;
  std::istringstream in(out);
  std::map<std::string, std::pair<double, double>> ref;
  for (std::string tap; in >> tap;) in >> ref[tap].first >> ref[tap].second;
  for (auto& t : r.taps) {
    ASSERT_TRUE(ref.count(t.tap)) << out;
    // 90 test rows: at most one prediction may differ (a row on the decision boundary)
    EXPECT_NEAR(t.source_acc.value(), ref[t.tap].first, 1.2) << t.tap;
    EXPECT_NEAR(t.target_acc.value(), ref[t.tap].second, 1.2) << t.tap;
  }
}

TEST_F(ProbeCli, SameDistributionHasSmallADistanceAndSweepChoosesOnVal) {
  auto near = make_cache(dir_ + "/near.h5", 0.0, 2);
  auto o = fast_options();
  o.taps = {"pooled"};
  o.tsne = false;
  o.scores = false;
  o.linear.Cs = {0.01, 0.1, 1, 10};
  auto r = probe::probe_cache(near, o);
  ASSERT_EQ(r.taps.size(), 1u);
  const auto& t = r.taps[0];
  ASSERT_TRUE(t.a_distance.has_value());
  EXPECT_LT(t.a_distance->a_distance, 0.6) << "error " << t.a_distance->error;
  ASSERT_TRUE(t.best_C.has_value());
  ASSERT_FALSE(t.sweep.empty());
  double best = -1;
  for (auto& p : t.sweep) best = std::max(best, p.val_acc);
  for (auto& p : t.sweep) {
    // every fit says how it stopped and how often it evaluated f (also when a line search ended it
    // and no iteration of its own completed)
    EXPECT_GE(p.evaluations, std::max(1, p.iterations)) << p.C;
    EXPECT_FALSE(p.stop_reason.empty()) << p.C;
    if (p.C == *t.best_C) {
      EXPECT_EQ(p.val_acc, best);
    }
  }
  EXPECT_FALSE(r.leep.has_value());
  EXPECT_FALSE(r.tsne.has_value());
  // an unknown tap is a usage error naming the taps there are
  o.taps = {"layer7"};
  try {
    probe::probe_cache(near, o);
    ADD_FAILURE() << "unknown tap accepted";
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("layer10"), std::string::npos) << e.what();
  }
}

// One label per class and no source test split (the transfer study's 1-label cells): C is chosen on
// source/val, every training row is fitted, and each figure names its rows.
TEST_F(ProbeCli, OneLabelPerClassChoosesCOnSourceValAndNamesTheRows) {
  auto few = make_cache(dir_ + "/few.h5", 0.0, 3, "mnist", "uci-digits", "", 1);
  auto o = fast_options();
  o.taps = {"pooled"};
  o.tsne = false;
  o.scores = false;
  o.knn_k = 0;
  o.distances = false;
  o.linear.Cs = {0.01, 0.1, 1};
  auto r = probe::probe_cache(few, o);
  ASSERT_EQ(r.taps.size(), 1u);
  const auto& t = r.taps[0];
  EXPECT_EQ(t.C_chosen_on, "source/val");
  EXPECT_EQ(t.source_acc_on, "source/val");
  EXPECT_EQ(t.target_acc_on, "target/test");
  ASSERT_TRUE(t.target_acc.has_value());
  EXPECT_GT(t.target_acc.value(), 100.0 / K + 10);  // well-separated classes: far above chance from 3 rows
  auto j = r.to_json();
  EXPECT_EQ(j["taps"][0]["linear"]["C_chosen_on"], "source/val");
  EXPECT_EQ(j["taps"][0]["linear"]["target_acc_on"], "target/test");
}

TEST_F(ProbeCli, ReportFilesJsonAndSvgs) {
  auto o = fast_options();
  o.taps = {"layer2", "pooled"};
  auto r = probe::probe_cache(far_, o);
  auto out = dir_ + "/report";
  auto files = probe::write_probe_report(r, out);
  EXPECT_EQ(files.size(), 5u);
  for (auto f : {"probe.json", "probe.md", "transferability.svg", "tsne_domain.svg", "tsne_class.svg"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  auto j = nlohmann::json::parse(core::read_file(out + "/probe.json"));
  ASSERT_EQ(j["taps"].size(), 2u);
  EXPECT_EQ(j["taps"][0]["tap"], "layer2");
  for (auto k : {"seconds", "source_acc", "target_acc", "target_target_acc", "iterations", "evaluations", "stop_reason", "objective", "best_C", "sweep"})
    EXPECT_TRUE(j["taps"][1]["linear"].contains(k)) << k;
  EXPECT_TRUE(j["taps"][1]["linear"]["source_acc"].is_number());
  for (auto k : {"a_distance", "mmd2", "coral", "logme", "h_score", "knn", "dim", "num_classes"})
    EXPECT_TRUE(j["taps"][1].contains(k)) << k;
  EXPECT_GT(j["taps"][1]["a_distance"]["a_distance"].get<double>(), 1.9);
  EXPECT_TRUE(j["leep"].is_number());
  EXPECT_EQ(j["tsne"]["tap"], "pooled");
  EXPECT_EQ(j["attributes"]["backbone"], "lenet");
  for (auto f : {"transferability.svg", "tsne_domain.svg", "tsne_class.svg"}) {
    auto svg = core::read_file(out + "/" + f);
    std::string why;
    EXPECT_TRUE(testutil::svg_well_formed(svg, &why)) << f << ": " << why;
  }
  auto chart = core::read_file(out + "/transferability.svg");
  for (auto s : {"layer2", "pooled", "A-distance", "source → target"}) EXPECT_NE(chart.find(s), std::string::npos) << s;
  EXPECT_NE(core::read_file(out + "/tsne_class.svg").find("class 2"), std::string::npos);
  auto md = core::read_file(out + "/probe.md");
  EXPECT_NE(md.find("| pooled |"), std::string::npos) << md;
  EXPECT_NE(r.text_table().find("A-dist"), std::string::npos);
  std::string why;
  EXPECT_FALSE(testutil::svg_well_formed("<svg><g></svg>", &why));  // the checker itself catches a bad nesting
}

TEST_F(ProbeCli, ProbeCommandEndToEnd) {
  auto out = dir_ + "/cli_out";
  auto r = run_cli({"probe", far_, "--out=" + out, "--probe.tsne_rows=100", "--probe.tsne_iters=250",
                    "--probe.Cs=0.1,1", "--run.threads=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("src→tgt %"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layer10"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wrote"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("tap pooled (3/4"), std::string::npos) << r.err;  // progress per tap
  auto j = nlohmann::json::parse(core::read_file(out + "/probe.json"));
  auto lin = j["taps"][0]["linear"];
  for (auto k : {"seconds", "source_acc", "iterations", "objective"}) EXPECT_TRUE(lin[k].is_number()) << k;
  EXPECT_TRUE(fs::exists(out + "/tsne_domain.svg"));
  // default output directory: beside the cache; the benchmark's flags
  auto copy = dir_ + "/copy.h5";
  fs::copy_file(far_, copy, fs::copy_options::overwrite_existing);
  auto b = run_cli({"probe", copy, "--probe.taps=pooled", "--probe.Cs=1", "--probe.max_iter=100", "--probe.knn_k=0",
                    "--probe.distances=false", "--probe.scores=false", "--probe.tsne=false", "--run.threads=1",
                    "--run.log_level=warn"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(b.err, "");
  auto jb = nlohmann::json::parse(core::read_file(dir_ + "/copy_probe/probe.json"));
  EXPECT_TRUE(jb["taps"][0]["linear"]["source_acc"].is_number());
  EXPECT_TRUE(jb["taps"][0]["a_distance"].is_null());
  EXPECT_FALSE(fs::exists(dir_ + "/copy_probe/tsne_domain.svg"));
}

TEST_F(ProbeCli, MissingCacheAndBadOptionsAreOneLineErrors) {
  auto out = dir_ + "/never";
  auto r = run_cli({"probe", dir_ + "/missing.h5", "--out=" + out});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(testutil::chomp(r.err).find('\n'), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing.h5"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));  // nothing written
  auto t = run_cli({"probe", far_, "--probe.taps=layer7", "--out=" + out});
  EXPECT_EQ(t.exit_code, 2) << t.err;
  EXPECT_EQ(testutil::chomp(t.err).find('\n'), std::string::npos) << t.err;
  EXPECT_NE(t.err.find("layer7"), std::string::npos) << t.err;
  EXPECT_FALSE(fs::exists(out));
  auto c = run_cli({"probe", far_, "--probe.Cs=1,abc"});
  EXPECT_EQ(c.exit_code, 2) << c.err;
  EXPECT_NE(c.err.find("probe.Cs"), std::string::npos) << c.err;
  auto a = run_cli({"advise", dir_ + "/missing.h5"});
  EXPECT_NE(a.exit_code, 0);
  EXPECT_EQ(testutil::chomp(a.err).find('\n'), std::string::npos) << a.err;
  auto h = run_cli({"probe", "--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("Examples:"), std::string::npos);
  EXPECT_NE(h.out.find("--probe.Cs"), std::string::npos);
}

TEST_F(ProbeCli, AdviseWritesAConfigTrainAccepts) {
  auto ini = dir_ + "/advice/digits.ini";
  auto r = run_cli({"advise", far_, "--out=" + ini, "--run.threads=1", "--run.log_level=warn"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (auto s : {"evidence", "tap pooled", "A-distance", "advice:", "wrote"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  // target labels in the cache, but the extraction config says the target is unlabelled; A-distance ≈ 2
  // -> domain adaptation, the band from source→source
  EXPECT_NE(r.out.find("data.target.labelled = false"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("linear probe source→source on pooled"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cdan+E"), std::string::npos) << r.out;
  auto text = core::read_file(ini);
  EXPECT_NE(text.find("method = cdan+E"), std::string::npos) << text;
  EXPECT_NE(text.find("backbone = lenet"), std::string::npos) << text;  // from the cache's config
  EXPECT_NE(text.find("freeze = "), std::string::npos) << text;
  auto t = run_cli({"train", "--config", ini, "--help"});
  EXPECT_EQ(t.exit_code, 0) << t.err;
  // one tap only; the logits tap can be chosen explicitly
  auto two = run_cli({"advise", far_, "--probe.taps=layer2,pooled", "--out=" + dir_ + "/x.ini"});
  EXPECT_EQ(two.exit_code, 2) << two.err;
  EXPECT_FALSE(fs::exists(dir_ + "/x.ini"));
}

// issue 18 §3.14: charts and reports name a user's domains by their list file / folder, not by the
// dataset kind ("list_file → list_file")
TEST_F(ProbeCli, DomainsOfDatasetKindsAreNamedByTheirFiles) {
  auto path = make_cache(dir_ + "/kinds.h5", 1.0, 3, "list_file", "image_folder",
                         "# resolved configuration of shiftlab extract\n[data.source]\n# the kind\ndataset = list_file\n"
                         "root = /data/office\nsplit = /data/office/photo.txt\n[data.target]\ndataset = image_folder\n"
                         "root = /data/sketch/\n");
  auto o = fast_options();
  o.tsne = false;
  auto rep = probe::probe_cache(path, o);
  EXPECT_EQ(rep.source_name, "photo");
  EXPECT_EQ(rep.target_name, "sketch");
}

// A cache whose target test split is its training split (the transductive protocol extracts the same
// images twice), and whose source val split is its training split: the probe must not test on the rows
// it was fitted on. It carves held-out rows and says so; on distinct splits it uses them as they are.
TEST(Probe, SameImagesInTrainAndTestBlocksAreNotTestedOn) {
  auto d = testutil::fresh_dir("probe_same_images");
  auto root = testutil::prepared_digits_root();
  std::vector<std::string> base{"extract", "--data.source.dataset=uci-digits", "--data.source.root=" + root,
                                "--data.source.transform=resize(28), normalize(0.5, 0.5)",
                                "--data.target.dataset=uci-digits", "--data.target.root=" + root,
                                "--data.target.split=val", "--data.target.transform=resize(28), normalize(0.5, 0.5)",
                                "--model.backbone=lenet", "--model.in_channels=1", "--run.threads=1",
                                "--run.log_level=warn", "--workers=1", "--limit=120", "--taps=pooled"};
  auto same = base, distinct = base;
  same.insert(same.end(), {"--data.target.test_split=val", "--data.source.val_split=train", d + "/same.h5"});
  distinct.insert(distinct.end(), {"--data.target.test_split=test", d + "/distinct.h5"});
  for (auto* args : {&same, &distinct}) {
    auto x = run_cli(*args);
    ASSERT_EQ(x.exit_code, 0) << x.err;
  }
  auto probe = [&](const std::string& name) {
    auto r = run_cli({"probe", d + "/" + name + ".h5", "--out=" + d + "/" + name, "--probe.knn_k=0",
                      "--probe.scores=false", "--probe.tsne=false", "--run.threads=1"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return std::pair{nlohmann::json::parse(core::read_file(d + "/" + name + "/probe.json"))["taps"][0]["linear"], r.err};
  };
  auto [s, s_err] = probe("same");
  EXPECT_NE(s["target_target_on"].get<std::string>().find("carved from target/test (target/train holds the same images)"),
            std::string::npos) << s.dump();
  EXPECT_LT(s["target_target_rows"].get<int64_t>(), 120) << s.dump();  // a held-out part, not all 120 rows
  EXPECT_NE(s["source_acc_on"].get<std::string>().find("carved from source/train"), std::string::npos) << s.dump();
  EXPECT_NE(s["C_chosen_on"].get<std::string>().find("carved from source/train"), std::string::npos) << s.dump();
  EXPECT_NE(s_err.find("source/val holds the same images as source/train"), std::string::npos) << s_err;
  auto [t, t_err] = probe("distinct");
  EXPECT_EQ(t["target_target_on"], "target/test") << t.dump();
  EXPECT_EQ(t["target_target_rows"], 120) << t.dump();
  EXPECT_EQ(t["source_acc_on"], "source/val") << t.dump();
}

// A test (or val) split drawn partly from the training images — a [data.target_test] subset of the
// target's own split, a source val subset of source/train — is neither identical nor disjoint: the
// cache records each row's image identity (item_hash) and the probe leaves the shared images out of
// the rows it fits on. The expected counts come from the cache's blocks, intersected here.
TEST(Probe, RowsSharedWithTheTestSplitAreLeftOutOfTheFit) {
  auto d = testutil::fresh_dir("probe_shared_rows");
  auto root = testutil::prepared_digits_root();
  auto x = run_cli({"extract", "--data.source.dataset=uci-digits", "--data.source.root=" + root,
                    "--data.source.transform=resize(28), normalize(0.5, 0.5)", "--data.source.val_split=train",
                    "--data.source_val.per_class=4", "--data.target.dataset=uci-digits", "--data.target.root=" + root,
                    "--data.target.split=val", "--data.target.test_split=val", "--data.target_test.per_class=3",
                    "--data.target.transform=resize(28), normalize(0.5, 0.5)", "--model.backbone=lenet",
                    "--model.in_channels=1", "--run.threads=1", "--run.log_level=warn", "--workers=1", "--limit=120",
                    "--taps=pooled", d + "/f.h5"});
  ASSERT_EQ(x.exit_code, 0) << x.err;
  auto shared = [&](const std::string& dom, const std::string& a, const std::string& b) {
    auto A = features::read_block(d + "/f.h5", dom, a, "pooled"), B = features::read_block(d + "/f.h5", dom, b, "pooled");
    EXPECT_EQ(A.item_hash.size(), static_cast<size_t>(A.X.rows()));
    std::set<int64_t> hb(B.item_hash.begin(), B.item_hash.end());
    int64_t n = 0;
    for (auto h : A.item_hash) n += hb.count(h);
    return std::pair{n, A.X.rows()};
  };
  auto [t_shared, t_rows] = shared("target", "train", "test");
  auto [s_shared, s_rows] = shared("source", "train", "val");
  ASSERT_GT(t_shared, 0);  // 30 test images drawn from val, whose first 120 are target/train
  ASSERT_LT(t_shared, t_rows);
  ASSERT_GT(s_shared, 0);
  auto r = run_cli({"probe", d + "/f.h5", "--out=" + d + "/p", "--probe.knn_k=0", "--probe.scores=false",
                    "--probe.tsne=false", "--run.threads=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(core::read_file(d + "/p/probe.json"))["taps"][0];
  auto lin = j["linear"];
  EXPECT_EQ(lin["target_target_on"], "target/test") << lin.dump();
  EXPECT_EQ(lin["target_target_rows"], 30) << lin.dump();
  EXPECT_EQ(j["source_train_rows"], s_rows - s_shared) << j.dump();
  EXPECT_EQ(lin["source_acc_on"], "source/val") << lin.dump();
  EXPECT_NE(r.err.find(core::str("source/val shares ", s_shared, " images with source/train")), std::string::npos) << r.err;
  // target→target is fitted on target/train without the test's images: one fewer kept row per shared image
  auto tt = probe::probe_cache(d + "/f.h5", [] {
    probe::ProbeOptions o;
    o.knn_k = 0;
    o.scores = false;
    o.tsne = false;
    return o;
  }());
  ASSERT_FALSE(tt.taps.empty());
  EXPECT_EQ(tt.taps[0].target_target_fit_on, core::str("target/train minus its ", t_shared, " images in target/test"));
}

// issue 18 §3.1: the README's workflow extract → advise → train --config advice.ini, end to end: the
// advice keeps the extraction's data and model settings (the cache's config attribute starts with
// a comment header, which used to lose them silently)
TEST(AdviseWorkflow, ExtractAdviseTrainWithTheAdvice) {
  auto d = testutil::fresh_dir("advise_workflow");
  auto root = testutil::prepared_digits_root();
  std::ofstream(d + "/exp.ini") << "[data.source]\ndataset = uci-digits\nroot = " << root
                                << "\ntransform = resize(28), normalize(0.5, 0.5)\n[data.target]\ndataset = uci-digits\nroot = "
                                << root << "\nsplit = val\ntransform = resize(28), normalize(0.5, 0.5)\nlabelled = false\n"
                                << "[model]\nbackbone = lenet\nin_channels = 1\n";
  auto x = run_cli({"extract", d + "/f.h5", "--config", d + "/exp.ini", "--run.threads=1", "--run.log_level=warn",
                    "--limit=80", "--workers=1"});
  ASSERT_EQ(x.exit_code, 0) << x.err;
  auto a = run_cli({"advise", d + "/f.h5", "--out=" + d + "/advice.ini", "--run.threads=1", "--run.log_level=warn"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.err.find("config"), std::string::npos) << a.err;
  auto ini = core::read_file(d + "/advice.ini");
  for (auto s : {"dataset = uci-digits", "backbone = lenet", "in_channels = 1", "split = val",
                 "transform = resize(28), normalize(0.5, 0.5)"})
    EXPECT_NE(ini.find(s), std::string::npos) << s << " missing from\n" << ini;
  auto t = run_cli({"train", "--config", d + "/advice.ini", "--run.root=" + d + "/runs", "--run.name=t",
                    "--run.threads=1", "--run.log_level=warn", "--train.steps=2", "--train.eval_every=2",
                    "--data.source.workers=0", "--data.target.workers=0", "--eval.workers=0"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  auto resolved = core::read_file(testutil::only_run(d + "/runs") + "/config.resolved.ini");
  EXPECT_NE(resolved.find("dataset = uci-digits"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("backbone = lenet"), std::string::npos) << resolved;
  // that run's exported backbone: a cache extracted from it records the run that trained the weights
  // (advise then does not take them for the published ones)
  auto run = testutil::only_run(d + "/runs");
  ASSERT_EQ(run_cli({"weights", "export", run, d + "/w.safetensors", "--checkpoint=latest"}).exit_code, 0);
  auto x2 = run_cli({"extract", d + "/f2.h5", "--config", d + "/exp.ini", "--model.weights=" + d + "/w.safetensors",
                     "--run.threads=1", "--run.log_level=warn", "--limit=80", "--workers=1"});
  ASSERT_EQ(x2.exit_code, 0) << x2.err;
  auto attrs = features::CacheReader::open(d + "/f2.h5").attributes();
  ASSERT_TRUE(attrs.contains("weights_trained_by")) << attrs.dump();
  EXPECT_TRUE(fs::equivalent(attrs["weights_trained_by"].get<std::string>(), run)) << attrs.dump();
  EXPECT_FALSE(features::CacheReader::open(d + "/f.h5").attributes().contains("weights_trained_by"));
}
