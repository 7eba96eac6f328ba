// The four roles of a run (data/roles.h): held-out sets for every dataset kind, class names
// matched across domains, overlaps counted, and what train / extract / data check record.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "core/error.h"
#include "core/fs.h"
#include "core/options.h"
#include "data/npy.h"
#include "data/roles.h"
#include "features/cache.h"
#include "support/testing.h"
#include "train/options.h"

using namespace shiftlab;
namespace fs = std::filesystem;

namespace {

// ------------------------------------------------------------------ tiny files

void roles_write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string roles_be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string roles_le16(uint16_t v) { return {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)}; }

uint32_t roles_crc32(const std::string& s) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

std::string roles_chunk(const std::string& type, const std::string& data) {
  return roles_be32(static_cast<uint32_t>(data.size())) + type + data + roles_be32(roles_crc32(type + data));
}

// An 8-bit grey PNG of w×h pixels of `value` (zlib stored blocks).
std::string roles_png(uint32_t w, uint32_t h, uint8_t value) {
  std::string raw;
  for (uint32_t y = 0; y < h; ++y) raw += '\0' + std::string(w, static_cast<char>(value));
  std::string z = "\x78\x01";
  z += '\x01' + roles_le16(static_cast<uint16_t>(raw.size())) + roles_le16(static_cast<uint16_t>(~raw.size())) + raw;
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  z += roles_be32((b << 16) | a);
  std::string ihdr = roles_be32(w) + roles_be32(h) + std::string("\x08\x00\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + roles_chunk("IHDR", ihdr) + roles_chunk("IDAT", z) +
         roles_chunk("IEND", "");
}

// A class-folder tree: root/<class>/<i>.png, `per` images per class, pixel value by class and i.
void roles_folder(const std::string& root, const std::vector<std::string>& classes, int per, int shade = 0) {
  for (size_t c = 0; c < classes.size(); ++c)
    for (int i = 0; i < per; ++i)
      roles_write(root + "/" + classes[c] + "/" + std::to_string(i) + ".png",
                  roles_png(8, 8, static_cast<uint8_t>(20 + 60 * c + 3 * i + shade)));
}

// N×8×8 uint8 images and (optionally) labels i % k.
void roles_npy(const std::string& dir, const std::string& name, int64_t n, int64_t k, bool labels = true) {
  fs::create_directories(dir);
  std::vector<uint8_t> px(static_cast<size_t>(n * 64));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 7 + i / 64 * 13) % 251);
  data::write_npy(dir + "/" + name + ".npy", "u1", {n, 8, 8}, px.data(), px.size());
  if (labels) {
    std::vector<int64_t> l(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) l[static_cast<size_t>(i)] = i % k;
    data::write_npy(dir + "/" + name + "_labels.npy", "i8", {n}, l.data(), l.size() * 8);
  }
}

data::RoleOptions roles_options(const std::vector<std::string>& args) {
  auto cfg = core::parse_args(train::experiment_schema(), args);
  return data::role_options_from(cfg);
}

// npy source (16 images, 4 classes) and target (12 images, 4 classes) in `d`.
std::vector<std::string> roles_npy_args(const std::string& d) {
  if (!fs::exists(d + "/src.npy")) {
    roles_npy(d, "src", 16, 4);
    roles_npy(d, "tgt", 12, 4);
  }
  return {"--data.source.dataset=npy", "--data.source.root=" + d + "/src.npy",
          "--data.source.labels=" + d + "/src_labels.npy", "--data.target.dataset=npy",
          "--data.target.root=" + d + "/tgt.npy", "--data.target.labels=" + d + "/tgt_labels.npy"};
}

std::vector<std::string> roles_plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::map<int64_t, int64_t> roles_counts(const std::vector<int64_t>& labels) {
  std::map<int64_t, int64_t> m;
  for (auto l : labels) m[l]++;
  return m;
}

std::string roles_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// ------------------------------------------------------------------ hold-out and overlap

TEST(Roles, StratifiedHoldoutMatchesHandCounts) {
  // class 0: 10 items, class 1: 4, class 2: 1, unlabelled: 3
  std::vector<int64_t> labels;
  for (int i = 0; i < 10; ++i) labels.push_back(0);
  for (int i = 0; i < 4; ++i) labels.push_back(1);
  labels.push_back(2);
  for (int i = 0; i < 3; ++i) labels.push_back(-1);
  std::rotate(labels.begin(), labels.begin() + 7, labels.end());  // interleave a little
  auto [keep, held] = data::stratified_holdout(labels, 0.25, 7);
  // round(2.5) = 3 of class 0, round(1) = 1 of class 1, none of a single item, round(0.75) = 1 unlabelled
  std::vector<int64_t> hl;
  for (auto i : held) hl.push_back(labels[i]);
  EXPECT_EQ(roles_counts(hl), (std::map<int64_t, int64_t>{{-1, 1}, {0, 3}, {1, 1}}));
  EXPECT_EQ(keep.size() + held.size(), labels.size());
  std::set<size_t> all(keep.begin(), keep.end());
  for (auto i : held) EXPECT_TRUE(all.insert(i).second) << "item " << i << " both kept and held out";
  EXPECT_TRUE(std::is_sorted(keep.begin(), keep.end()));
  EXPECT_TRUE(std::is_sorted(held.begin(), held.end()));
  // deterministic for a seed; another seed draws other items
  EXPECT_EQ(data::stratified_holdout(labels, 0.25, 7).second, held);
  bool differs = false;
  for (uint64_t s = 0; s < 5 && !differs; ++s) differs = data::stratified_holdout(labels, 0.25, s).second != held;
  EXPECT_TRUE(differs);
}

TEST(Roles, ValFractionAndTestFractionHoldOutDisjointStratifiedItems) {
  auto d = testutil::fresh_dir("roles_fraction");
  auto o = roles_options(roles_plus(roles_npy_args(d), {"--data.source.val_fraction=0.25", "--data.target.test_fraction=0.34"}));
  auto r = data::make_roles(o, data::RoleMode::Train);
  EXPECT_EQ(r.at("source/train").count, 12);
  EXPECT_EQ(r.at("source/val").count, 4);  // one of each of the 4 classes (4 items each)
  EXPECT_EQ(roles_counts(r.source_val->labels()), (std::map<int64_t, int64_t>{{0, 1}, {1, 1}, {2, 1}, {3, 1}}));
  EXPECT_EQ(r.at("source/val").overlap_source_train, 0);
  EXPECT_EQ(r.at("target/test").count, 4);  // 3 per class: round(1.02) = 1 each
  EXPECT_EQ(r.at("target/train").count, 8);
  EXPECT_EQ(r.at("target/test").overlap_target_train, 0);
  EXPECT_EQ(r.at("target/test").labelled, 4);
  EXPECT_EQ(r.at("target/train").labelled, 0);  // hidden during training
  EXPECT_EQ(r.target_train->num_classes(), 0);
  EXPECT_NE(r.at("source/val").definition.find("data.source.val_fraction"), std::string::npos);
  // the same seed holds out the same items; the hold-out is independent of run.seed
  auto r2 = data::make_roles(roles_options(roles_plus(roles_npy_args(d), {"--data.source.val_fraction=0.25",
                                                                         "--data.target.test_fraction=0.34",
                                                                         "--run.seed=5"})),
                             data::RoleMode::Train);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r2.source_val->raw().item_id(i), r.source_val->raw().item_id(i));
}

TEST(Roles, KindsWithoutSplitsNeedAHeldOutSetNamingTheOptions) {
  auto d = testutil::fresh_dir("roles_nosplit");
  auto args = roles_npy_args(d);
  auto e = roles_error([&] { data::make_roles(roles_options(args), data::RoleMode::Train); });
  EXPECT_NE(e.find("source/val: npy data"), std::string::npos) << e;
  EXPECT_NE(e.find("data.source.val_fraction"), std::string::npos) << e;
  EXPECT_NE(e.find("[data.source_val]"), std::string::npos) << e;
  e = roles_error([&] {
    data::make_roles(roles_options(roles_plus(args, {"--data.source.val_fraction=0.25"})), data::RoleMode::Train);
  });
  EXPECT_NE(e.find("target/test: npy data"), std::string::npos) << e;
  for (auto* k : {"[data.target_test]", "data.target.test_fraction", "data.protocol = transductive"})
    EXPECT_NE(e.find(k), std::string::npos) << k << " in " << e;
  // a transform alone does not make a held-out set
  e = roles_error([&] {
    data::make_roles(roles_options(roles_plus(args, {"--data.source_val.transform=resize(8)"})), data::RoleMode::Train);
  });
  EXPECT_NE(e.find("data.source.val_fraction"), std::string::npos) << e;
  // data check records it instead of throwing
  auto r = data::make_roles(roles_options(args), data::RoleMode::Check);
  EXPECT_EQ(r.source_val, nullptr);
  EXPECT_NE(r.at("source/val").error.find("data.source.val_fraction"), std::string::npos);
  EXPECT_NE(r.source_train, nullptr);
}

TEST(Roles, SectionsDefineCompleteHeldOutDomainsAndOverlapIsCounted) {
  auto d = testutil::fresh_dir("roles_sections");
  auto args = roles_npy_args(d);
  roles_npy(d, "val", 6, 3);
  roles_npy(d, "test", 5, 4);
  auto o = roles_options(roles_plus(args, {"--data.source_val.root=" + d + "/val.npy",
                                           "--data.source_val.labels=" + d + "/val_labels.npy",
                                           "--data.target_test.root=" + d + "/test.npy",
                                           "--data.target_test.labels=" + d + "/test_labels.npy"}));
  auto r = data::make_roles(o, data::RoleMode::Train);
  EXPECT_EQ(r.at("source/val").count, 6);
  EXPECT_EQ(r.at("source/val").definition, "[data.source_val]");
  EXPECT_EQ(r.at("target/test").count, 5);
  EXPECT_EQ(r.at("target/test").overlap_target_train, 0);
  EXPECT_EQ(r.source_val->options().dataset, "npy");  // inherited from data.source
  // the training images as target/test under held_out: counted; refused (naming the protocol
  // option) when the method adapts on them, recorded only when it never reads them
  auto same = roles_options(roles_plus(args, {"--data.source.val_fraction=0.25", "--data.target_test.root=" + d + "/tgt.npy"}));
  auto rs = data::make_roles(same, data::RoleMode::Train);
  EXPECT_EQ(rs.at("target/test").overlap_target_train, 12);
  EXPECT_EQ(rs.at("target/test").overlap_source_train, 0);
  auto e = roles_error([&] { data::check_target_overlap(rs, /*target_used=*/true); });
  EXPECT_NE(e.find("target/test shares 12 of 12 images with target/train"), std::string::npos) << e;
  EXPECT_NE(e.find("data.protocol = transductive"), std::string::npos) << e;
  EXPECT_EQ(roles_error([&] { data::check_target_overlap(rs, /*target_used=*/false); }), "");
  EXPECT_EQ(roles_error([&] { data::check_target_overlap(r, true); }), "");
  // the same file reached by another spelling of its path is still the same images
  fs::create_directories(d + "/sub");
  auto spelled = roles_options(roles_plus(args, {"--data.source.val_fraction=0.25",
                                                 "--data.target_test.root=" + d + "/./sub/../tgt.npy"}));
  EXPECT_EQ(data::make_roles(spelled, data::RoleMode::Train).at("target/test").overlap_target_train, 12);
  // a source/val that is the source training file: recorded (and warned), not refused
  auto sv = roles_options(roles_plus(args, {"--data.source_val.root=" + d + "/src.npy", "--data.target.test_fraction=0.25"}));
  EXPECT_EQ(data::make_roles(sv, data::RoleMode::Train).at("source/val").overlap_source_train, 16);
}

TEST(Roles, TransductiveIsTheTargetTrainingImagesAndRecordedAsSuch) {
  auto d = testutil::fresh_dir("roles_transductive");
  auto o = roles_options(roles_plus(roles_npy_args(d), {"--data.source.val_fraction=0.25", "--data.protocol=transductive"}));
  auto r = data::make_roles(o, data::RoleMode::Train);
  EXPECT_EQ(r.protocol, "transductive");
  EXPECT_EQ(r.at("target/test").count, 12);
  EXPECT_EQ(r.at("target/test").overlap_target_train, 12);
  EXPECT_EQ(r.at("target/test").labelled, 12);
  EXPECT_NE(r.at("target/test").definition.find("TRANSDUCTIVE"), std::string::npos);
  EXPECT_EQ(r.to_json()["roles"]["target/test"]["overlap_target_train"], 12);
  // transductive with a held-out target set is contradictory
  auto e = roles_error([&] {
    data::make_roles(roles_options(roles_plus(roles_npy_args(d), {"--data.source.val_fraction=0.25",
                                                                  "--data.protocol=transductive",
                                                                  "--data.target.test_fraction=0.2"})),
                     data::RoleMode::Train);
  });
  EXPECT_NE(e.find("remove data.target.test_fraction"), std::string::npos) << e;
}

TEST(Roles, EvaluationSetsWithoutLabelsAreErrorsNamingTheOption) {
  auto d = testutil::fresh_dir("roles_unlabelled");
  roles_npy(d, "src", 16, 4);
  roles_npy(d, "tgt", 12, 4, /*labels=*/false);
  std::vector<std::string> args{"--data.source.dataset=npy", "--data.source.root=" + d + "/src.npy",
                                "--data.source.labels=" + d + "/src_labels.npy", "--data.source.val_fraction=0.25",
                                "--data.target.dataset=npy", "--data.target.root=" + d + "/tgt.npy",
                                "--data.protocol=transductive"};
  auto e = roles_error([&] { data::make_roles(roles_options(args), data::RoleMode::Train); });
  EXPECT_NE(e.find("target/test (npy"), std::string::npos) << e;
  EXPECT_NE(e.find("has no labels: set [data.target_test]"), std::string::npos) << e;
  e = roles_error([&] { data::make_roles(roles_options(args), data::RoleMode::Train, /*oracle=*/true); });
  EXPECT_EQ(e.rfind("train.select = oracle needs a labelled target/test", 0), 0u) << e;
  // extract keeps what it can: the unlabelled block is written with labels -1
  auto r = data::make_roles(roles_options(args), data::RoleMode::Extract);
  ASSERT_NE(r.target_test, nullptr);
  EXPECT_EQ(r.at("target/test").labelled, 0);
}

// ------------------------------------------------------------------ classes by name

TEST(Roles, ClassFoldersAreMatchedByNameNotBySortOrder) {
  auto d = testutil::fresh_dir("roles_classes");
  roles_folder(d + "/src", {"cat", "dog"}, 3);
  roles_folder(d + "/tgt", {"Dog", "cat"}, 2, 1);  // sorted: "Dog" < "cat" -> index 0 would be Dog
  roles_folder(d + "/test", {"cat"}, 2, 2);        // a test set lacking a class is fine
  std::vector<std::string> base{"--data.source.dataset=image_folder", "--data.source.root=" + d + "/src",
                                "--data.source.val_fraction=0.34",     "--data.target.dataset=image_folder",
                                "--data.target.root=" + d + "/tgt",    "--data.target_test.root=" + d + "/test"};
  auto e = roles_error([&] { data::make_roles(roles_options(base), data::RoleMode::Train); });
  EXPECT_NE(e.find("target/train (image_folder " + d + "/tgt"), std::string::npos) << e;
  EXPECT_NE(e.find("'Dog' — did you mean 'dog'?"), std::string::npos) << e;
  EXPECT_NE(e.find("source classes absent here: 'dog'"), std::string::npos) << e;
  EXPECT_NE(e.find("data.class_match = case_insensitive"), std::string::npos) << e;

  auto check_labels = [&](const data::Roles& r) {
    // Dog/0.png, Dog/1.png, cat/0.png, cat/1.png in that (sorted) order -> source indices 1, 1, 0, 0
    auto l = r.target_train->raw().labels();
    EXPECT_EQ(l, (std::vector<int64_t>{1, 1, 0, 0}));
    EXPECT_EQ(r.target_train->raw().class_names(), (std::vector<std::string>{"cat", "dog"}));
    EXPECT_EQ(r.target_test->labels(), (std::vector<int64_t>{0, 0}));
    EXPECT_EQ(r.target_test->num_classes(), 2);
    EXPECT_EQ(r.at("target/test").overlap_target_train, 0);
  };
  check_labels(data::make_roles(roles_options(roles_plus(base, {"--data.class_match=case_insensitive"})),
                                data::RoleMode::Train));
  roles_write(d + "/map.txt", "# target name = source name\nDog = dog\n");
  check_labels(data::make_roles(roles_options(roles_plus(base, {"--data.class_map=" + d + "/map.txt"})),
                                data::RoleMode::Train));
}

TEST(Roles, ClassNamesTheSourceLacksAreListed) {
  EXPECT_EQ(data::match_class_names({"a", "b", "c"}, {"c", "a"}, "x", false, {}), (std::vector<int64_t>{2, 0}));
  auto e = roles_error([] { data::match_class_names({"bird", "cat"}, {"cat", "Bird", "horse"}, "target/test (t)", false, {}); });
  EXPECT_NE(e.find("target/test (t): class name(s) not among the source's classes: 'Bird' — did you mean 'bird'?, "
                   "'horse'"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("source classes absent here: 'bird'"), std::string::npos) << e;
  // two names onto one source class
  e = roles_error([] { data::match_class_names({"cat", "dog"}, {"Cat", "cat"}, "t", true, {}); });
  EXPECT_NE(e.find("two classes map onto the source class 'cat'"), std::string::npos) << e;
  // a malformed map names the file and line
  auto d = testutil::fresh_dir("roles_classmap");
  roles_write(d + "/m.txt", "a = b\nno equals sign\n");
  e = roles_error([&] { data::read_class_map(d + "/m.txt"); });
  EXPECT_NE(e.find("class map '" + d + "/m.txt' line 2"), std::string::npos) << e;
}

// ------------------------------------------------------------------ the binary

namespace {
std::vector<std::string> roles_train_args(const std::string& d, const std::vector<std::string>& more) {
  auto a = roles_plus({"train", "--run.root=" + d + "/runs", "--run.name=t", "--run.threads=1", "--run.log_level=info",
                       "--data.source.transform=resize(28)", "--data.target.transform=resize(28)",
                       "--data.source.batch_size=4", "--data.target.batch_size=4", "--data.source.workers=0",
                       "--data.target.workers=0", "--model.backbone=lenet", "--model.in_channels=1",
                       "--method=source_only", "--train.steps=2", "--train.eval_every=2", "--eval.workers=0"},
                      roles_npy_args(d));
  return roles_plus(a, more);
}
}  // namespace

TEST(Roles, TrainRecordsWhichImagesEachNumberIsComputedOn) {
  auto d = testutil::fresh_dir("roles_train");
  auto r = testutil::run_cli(roles_train_args(d, {"--data.source.val_fraction=0.25", "--data.target.test_fraction=0.34"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto run = testutil::only_run(d + "/runs");
  auto s = testutil::run_summary(run);
  EXPECT_EQ(s["protocol"], "held_out");
  const auto& roles = s["data"]["roles"];
  EXPECT_EQ(roles["source/train"]["count"], 12);
  EXPECT_EQ(roles["source/val"]["count"], 4);
  EXPECT_EQ(roles["source/val"]["overlap_source_train"], 0);
  EXPECT_EQ(roles["target/test"]["count"], 4);
  EXPECT_EQ(roles["target/test"]["overlap_target_train"], 0);
  EXPECT_EQ(s["evaluated_on"]["target_test_acc"]["count"], 4);
  EXPECT_EQ(s["selected"]["target_test_n"], 4);
  EXPECT_EQ(s["selected"]["source_val_n"], 4);
  EXPECT_TRUE(s["selected"]["target_test_acc"].is_number());
  EXPECT_TRUE(s["oracle"]["target_test_acc"].is_number());
  auto log = core::read_file(run + "/log.txt");
  EXPECT_NE(log.find("target/test: 4 images (4 labelled), data.target.test_fraction"), std::string::npos) << log;
  EXPECT_NE(log.find("target-test "), std::string::npos);
  EXPECT_EQ(core::read_file(run + "/summary.json").find("nan"), std::string::npos);

  // transductive: asked for, and said so in the summary, the log and the final line
  auto t = testutil::run_cli(roles_train_args(d, {"--data.source.val_fraction=0.25", "--data.protocol=transductive",
                                                  "--run.name=tr"}));
  ASSERT_EQ(t.exit_code, 0) << t.err;
  auto trun = testutil::only_run(d + "/runs", "tr");
  auto ts = testutil::run_summary(trun);
  EXPECT_EQ(ts["protocol"], "transductive");
  EXPECT_EQ(ts["data"]["roles"]["target/test"]["overlap_target_train"], 12);
  EXPECT_NE(ts["protocol_note"].get<std::string>().find("TRANSDUCTIVE"), std::string::npos);
  EXPECT_NE(core::read_file(trun + "/log.txt").find("TRANSDUCTIVE"), std::string::npos);
  EXPECT_NE(t.out.find("TRANSDUCTIVE"), std::string::npos) << t.out;
}

TEST(Roles, TargetTestLackingSourceClassesIsFine) {
  // labels 0..2 of a 4-class source: the highest class absent (used to be refused; a middle one
  // was accepted); its per-class accuracy is null, never nan
  auto d = testutil::fresh_dir("roles_missing_class");
  roles_npy(d, "test3", 6, 3);
  auto r = testutil::run_cli(roles_train_args(d, {"--data.source.val_fraction=0.25", "--data.target_test.root=" + d + "/test3.npy",
                                                  "--data.target_test.labels=" + d + "/test3_labels.npy"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = testutil::run_summary(testutil::only_run(d + "/runs"));
  EXPECT_EQ(s["data"]["roles"]["target/test"]["count"], 6);
  const auto& pc = s["selected"]["target_test_per_class"];
  ASSERT_EQ(pc.size(), 4u) << s.dump();
  EXPECT_TRUE(pc[3].is_null()) << pc.dump();
  EXPECT_TRUE(pc[0].is_number()) << pc.dump();
}

TEST(Roles, ExtractWritesRoleBlocksProbeReadsThemWithoutSplitFlags) {
  auto d = testutil::fresh_dir("roles_extract");
  roles_folder(d + "/img", {"a", "b", "c"}, 4);
  // list files: source train / val, target train / test (TLlib layout, paths relative to root)
  auto list = [&](const std::string& name, const std::vector<int>& items) {
    std::string s;
    for (int c = 0; c < 3; ++c)
      for (int i : items) s += "img/" + std::string(1, static_cast<char>('a' + c)) + "/" + std::to_string(i) + ".png " +
                               std::to_string(c) + "\n";
    roles_write(d + "/" + name, s);
  };
  list("src_train.txt", {0, 1});
  list("src_val.txt", {2});
  list("tgt_train.txt", {2, 3});
  list("tgt_test.txt", {0});
  std::vector<std::string> args{"extract", d + "/f.h5", "--run.threads=1", "--run.log_level=warn",
                                "--model.backbone=lenet", "--model.in_channels=1",
                                "--data.source.dataset=list_file", "--data.source.root=" + d,
                                "--data.source.split=src_train.txt", "--data.source.val_split=src_val.txt",
                                "--data.source.transform=resize(28)", "--data.target.dataset=list_file",
                                "--data.target.root=" + d, "--data.target.split=tgt_train.txt",
                                "--data.target.test_split=tgt_test.txt", "--data.target.transform=resize(28)",
                                "--taps=pooled", "--batch_size=8", "--workers=0"};
  auto r = testutil::run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, int64_t> rows;
  for (auto& e : features::list_cache(d + "/f.h5")) rows[e.domain + "/" + e.split] = e.rows;
  EXPECT_EQ(rows, (std::map<std::string, int64_t>{
                      {"source/train", 6}, {"source/val", 3}, {"target/train", 6}, {"target/test", 3}}));
  std::string out;
  ASSERT_EQ(testutil::run_shell("/usr/bin/python3 -c \"import h5py; f = h5py.File('" + d +
                                    "/f.h5', 'r'); print(f['source/val'].attrs['origin']); "
                                    "print(f['source/val'].attrs['dataset'])\"",
                                &out),
            0)
      << out;
  EXPECT_NE(out.find("data.source.val_split = src_val.txt"), std::string::npos) << out;
  EXPECT_NE(out.find(d + "/src_val.txt"), std::string::npos) << out;
  // probe finds source/val and target/test by their role names
  auto p = testutil::run_cli({"probe", d + "/f.h5", "--out=" + d + "/probe", "--probe.tsne=false", "--run.threads=1"});
  ASSERT_EQ(p.exit_code, 0) << p.err << p.out;
}

TEST(Roles, DataCheckUsesTheSameHeldOutDefinitions) {
  auto d = testutil::fresh_dir("roles_check");
  auto args = roles_npy_args(d);
  auto ok = testutil::run_cli(roles_plus({"data", "check"}, roles_plus(args, {"--data.source.val_fraction=0.25",
                                                                              "--data.target.test_fraction=0.34"})));
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("source val (npy, train): 4 items, 0 unreadable, 0 labels out of range, 4 of 4 classes present, "
                        "0 shared with source/train"),
            std::string::npos)
      << ok.out;
  auto bad = testutil::run_cli(roles_plus({"data", "check"}, args));
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("source/val: not available: source/val: npy data"), std::string::npos) << bad.out;
}

TEST(Roles, ByodExampleRunsEndToEnd) {
  // scripts/byod_example.sh with tiny step counts, on prepared uci-digits (its default is MNIST)
  auto d = testutil::fresh_dir("roles_byod");
  std::string out;
  int rc = testutil::run_shell("cd " + d + " && SHIFTLAB_BIN=" SHIFTLAB_BIN " bash " +
                                   testutil::source_path("scripts/byod_example.sh") + " --data " +
                                   testutil::prepared_digits_root() + " --out " + d + "/byod --runs " + d +
                                   "/runs --dataset uci-digits --per-class 6 --eval-per-class 3 --steps 4 2>&1",
                               &out);
  ASSERT_EQ(rc, 0) << out;
  auto first = testutil::run_summary(testutil::only_run(d + "/runs", "byod"));
  EXPECT_EQ(first["status"], "completed");
  EXPECT_EQ(first["protocol"], "held_out");
  const auto& roles = first["data"]["roles"];
  EXPECT_EQ(roles["source/train"]["count"], 60);
  EXPECT_EQ(roles["source/val"]["count"], 30);
  EXPECT_EQ(roles["target/train"]["count"], 60);
  EXPECT_EQ(roles["target/test"]["count"], 30);
  for (auto* r : {"source/val", "target/test"}) {
    EXPECT_EQ(roles[r]["overlap_source_train"], 0) << r;
    EXPECT_EQ(roles[r]["overlap_target_train"], 0) << r;
  }
  EXPECT_EQ(first["data"]["classes"][0], "eight");  // sorted folder names, matched case-insensitively
  std::map<std::string, int64_t> rows;
  for (auto& e : features::list_cache(d + "/runs/byod.h5"))
    if (e.tap == "pooled") rows[e.domain + "/" + e.split] = e.rows;
  EXPECT_EQ(rows, (std::map<std::string, int64_t>{
                      {"source/train", 60}, {"source/val", 30}, {"target/train", 60}, {"target/test", 30}}));
  EXPECT_TRUE(fs::exists(d + "/runs/byod_advice.ini"));
  auto second = testutil::run_summary(testutil::only_run(d + "/runs", "byod_advice"));
  EXPECT_EQ(second["status"], "completed");
  EXPECT_EQ(second["data"]["roles"]["target/test"]["count"], 30);
}
