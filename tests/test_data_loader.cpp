// Loader: every index once per epoch for any worker count, bit-identical batches whatever the
// worker count, ForeverIterator exact resume and preload, class-balanced sampling frequencies, errors.
#include "data/loader.h"

#include <set>

#include "data/datasets.h"
#include "data_test_util.h"

using namespace shiftlab;

namespace {

/// n random 1×12×10 uint8 images; label of item i = class_of(i).
data::RawDatasetPtr toy(int64_t n, const std::function<int64_t(int64_t)>& class_of, uint64_t seed = 1) {
  data::Rng rng(seed);
  std::vector<uint8_t> px(static_cast<size_t>(n * 12 * 10));
  for (auto& v : px) v = static_cast<uint8_t>(rng.below(256));
  std::vector<int64_t> labels(static_cast<size_t>(n));
  int64_t nc = 0;
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = class_of(i), nc = std::max(nc, class_of(i) + 1);
  return std::make_shared<data::ArrayDataset>(n, 12, 10, 1, px, std::vector<float>{}, labels, nc, "toy");
}

data::DatasetPtr domain(data::RawDatasetPtr raw, const std::string& chain) {
  data::DomainOptions o;
  return std::make_shared<data::DomainDataset>(raw, data::parse_transforms(chain), o);
}

std::vector<data::Batch> epoch_batches(data::DatasetPtr ds, data::LoaderOptions o, int64_t epoch) {
  data::Loader l(ds, o);
  l.start_epoch(epoch);
  std::vector<data::Batch> out;
  data::Batch b;
  while (l.next(b)) out.push_back(b);
  return out;
}

}  // namespace

TEST(DataLoader, EveryIndexOncePerEpochAnyWorkerCount) {
  auto ds = domain(toy(103, [](int64_t i) { return i % 4; }), "");
  for (int workers : {0, 1, 3}) {
    data::LoaderOptions o;
    o.batch_size = 10;
    o.workers = workers;
    o.drop_last = false;
    o.prefetch = 2;
    data::Loader l(ds, o);
    EXPECT_EQ(l.batches_per_epoch(), 11);
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      l.start_epoch(epoch);
      std::multiset<int64_t> seen;
      data::Batch b;
      int64_t nb = 0;
      while (l.next(b)) {
        ++nb;
        EXPECT_EQ(b.images.dim(), 4);
        for (int64_t k = 0; k < b.indices.size(0); ++k) {
          int64_t i = b.indices[k].item<int64_t>();
          seen.insert(i);
          EXPECT_EQ(b.labels[k].item<int64_t>(), i % 4);
        }
      }
      EXPECT_EQ(nb, 11) << "workers " << workers;
      EXPECT_EQ(seen.size(), 103u);
      for (int64_t i = 0; i < 103; ++i) EXPECT_EQ(seen.count(i), 1u) << "index " << i << " workers " << workers;
    }
  }
}

TEST(DataLoader, DropLastAndShuffleDifferBetweenEpochs) {
  auto ds = domain(toy(50, [](int64_t i) { return i % 2; }), "");
  data::LoaderOptions o;
  o.batch_size = 8;
  o.workers = 2;
  auto e0 = epoch_batches(ds, o, 0), e1 = epoch_batches(ds, o, 1), e0b = epoch_batches(ds, o, 0);
  EXPECT_EQ(e0.size(), 6u);  // 50 / 8, last partial dropped
  EXPECT_EQ(e0.back().images.size(0), 8);
  EXPECT_FALSE(torch::equal(e0[0].indices, e1[0].indices));
  for (size_t k = 0; k < e0.size(); ++k) EXPECT_TRUE(torch::equal(e0[k].indices, e0b[k].indices));
  o.shuffle = false;
  auto seq = epoch_batches(ds, o, 3);
  EXPECT_TRUE(torch::equal(seq[0].indices, torch::arange(8, torch::kInt64)));
}

TEST(DataLoader, BatchesBitIdenticalWhateverTheWorkerCount) {
  auto ds = domain(toy(40, [](int64_t i) { return i % 3; }),
                   "random_resized_crop(8, scale=[0.3, 1]), hflip, rotation(20), color_jitter(0.3, 0.3), normalize(0.5, 0.25)");
  data::LoaderOptions o;
  o.batch_size = 6;
  o.seed = 77;
  o.drop_last = false;
  std::vector<std::vector<data::Batch>> runs;
  for (int workers : {0, 1, 3}) {
    o.workers = workers;
    runs.push_back(epoch_batches(ds, o, 2));
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t k = 0; k < runs[0].size(); ++k) {
      EXPECT_TRUE(torch::equal(runs[r][k].images, runs[0][k].images)) << "run " << r << " batch " << k;
      EXPECT_TRUE(torch::equal(runs[r][k].indices, runs[0][k].indices));
    }
  }
  // a different epoch augments the same item differently
  o.workers = 2;
  o.shuffle = false;
  auto a = epoch_batches(ds, o, 0), b = epoch_batches(ds, o, 1);
  EXPECT_FALSE(torch::equal(a[0].images, b[0].images));
}

TEST(DataLoader, ForeverIteratorRestoreReproducesBatches) {
  auto ds = domain(toy(23, [](int64_t i) { return i % 2; }), "random_crop(10, padding=2), hflip");
  data::LoaderOptions o;
  o.batch_size = 5;  // 4 batches per epoch with drop_last
  o.workers = 2;
  o.seed = 5;
  data::ForeverIterator it(ds, o);
  for (int k = 0; k < 7; ++k) it.next();  // into the second epoch
  auto st = it.state();
  EXPECT_EQ(st["epoch"].get<int64_t>(), 1);
  std::vector<data::Batch> expect;
  for (int k = 0; k < 9; ++k) expect.push_back(it.next());
  for (int workers : {0, 3}) {
    o.workers = workers;
    data::ForeverIterator fresh(ds, o);
    fresh.restore(nlohmann::json::parse(st.dump()));
    for (int k = 0; k < 9; ++k) {
      auto b = fresh.next();
      EXPECT_TRUE(torch::equal(b.images, expect[static_cast<size_t>(k)].images)) << "batch " << k << " workers " << workers;
      EXPECT_TRUE(torch::equal(b.indices, expect[static_cast<size_t>(k)].indices));
    }
  }
  o.seed = 6;
  data::ForeverIterator other(ds, o);
  EXPECT_THROW(other.restore(st), core::Error);
}

TEST(DataLoader, PreloadCyclesTheFirstBatches) {
  auto ds = domain(toy(23, [](int64_t i) { return i % 2; }), "random_crop(10, padding=2), hflip");
  data::LoaderOptions o;
  o.batch_size = 5;
  o.seed = 3;
  data::ForeverIterator plain(ds, o);
  auto first = plain.next(), second = plain.next(), third = plain.next();
  o.preload = 2;
  data::ForeverIterator pre(ds, o);
  for (int k = 0; k < 6; ++k) {
    auto b = pre.next();
    const auto& want = k % 2 ? second : first;
    EXPECT_TRUE(torch::equal(b.images, want.images)) << "batch " << k;
    EXPECT_TRUE(torch::equal(b.indices, want.indices)) << "batch " << k;
  }
  EXPECT_FALSE(torch::equal(third.images, first.images));  // without preload the stream moves on
  // once the cycle is full the loader builds nothing more (its prefetch queue and buffers are freed)
  data::Batch rest;
  EXPECT_FALSE(pre.loader().next(rest));
  EXPECT_TRUE(torch::equal(pre.next().images, first.images));  // and the cycle goes on
}

TEST(DataLoader, BalancedSamplerEqualisesClassFrequencies) {
  // classes with 600, 300, 60, 40 items
  auto cls = [](int64_t i) { return i < 600 ? 0 : i < 900 ? 1 : i < 960 ? 2 : 3; };
  auto ds = domain(toy(1000, cls), "");
  data::LoaderOptions o;
  o.balanced = true;
  o.seed = 3;
  std::vector<double> freq(4, 0);
  double total = 0;
  for (int64_t e = 0; e < 10; ++e)
    for (auto i : data::epoch_order(*ds, o, e)) freq[static_cast<size_t>(cls(i))] += 1, total += 1;
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(freq[static_cast<size_t>(c)] / total, 0.25, 0.015) << "class " << c;
  // unlabelled data cannot be balanced
  auto unl = domain(toy(10, [](int64_t) { return -1; }), "");
  EXPECT_THROW(data::epoch_order(*unl, o, 0), core::Error);
}

TEST(DataLoader, WorkerErrorsReachTheCaller) {
  auto ds = domain(toy(20, [](int64_t i) { return i % 2; }), "bands(3)");  // 1-band images
  data::LoaderOptions o;
  o.batch_size = 4;
  o.workers = 2;
  data::Loader l(ds, o);
  l.start_epoch(0);
  data::Batch b;
  try {
    l.next(b);
    ADD_FAILURE() << "no error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bands"), std::string::npos) << e.what();
  }
  o.batch_size = 64;
  EXPECT_THROW({ data::ForeverIterator it(ds, o); }, core::UsageError);  // fewer items than one batch
}

TEST(DataLoader, OptionsFromConfig) {
  core::Schema s;
  data::declare_loader_options(s, "loader.source");
  data::DomainOptions d;
  d.dataset = "mnist";
  data::declare_domain_options(s, "data.source", d);
  auto cfg = core::parse_args(s, {"--loader.source.batch_size=16", "--loader.source.workers=3", "--loader.source.balanced=true",
                                  "--data.source.split=val", "--data.source.labelled=false", "--data.source.on_error=skip"});
  auto lo = data::loader_options_from(cfg, "loader.source");
  EXPECT_EQ(lo.batch_size, 16);
  EXPECT_EQ(lo.workers, 3);
  EXPECT_TRUE(lo.balanced);
  auto dom = data::domain_options_from(cfg, "data.source");
  EXPECT_EQ(dom.dataset, "mnist");
  EXPECT_EQ(dom.split, "val");
  EXPECT_FALSE(dom.labelled);
  EXPECT_EQ(dom.on_error, "skip");
  EXPECT_THROW(core::parse_args(s, {"--data.source.on_error=ignore"}), core::UsageError);
}
