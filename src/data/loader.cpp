#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/runtime.h"
#include "data/datasets.h"
#include "data/rng.h"

namespace shiftlab::data {

using core::check;
using core::str;

uint64_t item_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return mix_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index), 0x5eed);
}

std::vector<int64_t> epoch_order(const Dataset& ds, const LoaderOptions& o, int64_t epoch) {
  const size_t n = ds.size();
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (o.balanced) {
    auto labels = ds.labels();
    std::map<int64_t, int64_t> count;
    for (size_t i = 0; i < n; ++i) {
      check(labels[i] >= 0, "balanced sampling needs labels, but item ", i, " of ", ds.describe(), " has none");
      count[labels[i]]++;
    }
    // cumulative weights 1 / count(label): every class gets the same total mass
    std::vector<double> cum(n);
    double acc = 0;
    for (size_t i = 0; i < n; ++i) cum[i] = (acc += 1.0 / static_cast<double>(count[labels[i]]));
    Rng rng(mix_seed(o.seed, static_cast<uint64_t>(epoch), 0xba1a));
    for (size_t k = 0; k < n; ++k) {
      double u = rng.uniform() * acc;
      size_t j = static_cast<size_t>(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin());
      order[k] = static_cast<int64_t>(std::min(j, n - 1));
    }
  } else if (o.shuffle) {
    Rng rng(mix_seed(o.seed, static_cast<uint64_t>(epoch), 0x5a0f));
    rng.shuffle(order);
  }
  return order;
}

// Positions [0, total) of an n-item (wrapped) epoch order are dealt out to the shards.
static int64_t shard_total(int64_t n, const LoaderOptions& o) {
  const int64_t w = o.shard_count;
  if (!o.shard_even) return n;
  return o.drop_last ? n / w * w : (n + w - 1) / w * w;
}

std::vector<int64_t> shard_order(const std::vector<int64_t>& order, const LoaderOptions& o) {
  const int64_t w = o.shard_count, r = o.shard_rank;
  check(w >= 1 && r >= 0 && r < w, "bad loader shard ", r, " of ", w);
  if (w == 1) return order;
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t total = shard_total(n, o);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(total / w + 1));
  for (int64_t p = r; p < total && n > 0; p += w) out.push_back(order[static_cast<size_t>(p % n)]);
  return out;
}

Loader::Loader(DatasetPtr ds, LoaderOptions o) : ds_(std::move(ds)), o_(o) {
  check(ds_ != nullptr, "Loader: no dataset");
  core::check_usage(o_.batch_size >= 1, "batch_size must be >= 1, got ", o_.batch_size);
  core::check_usage(o_.workers >= 0, "workers must be >= 0, got ", o_.workers);
  check(o_.shard_count >= 1 && o_.shard_rank >= 0 && o_.shard_rank < o_.shard_count, "bad loader shard ",
        o_.shard_rank, " of ", o_.shard_count);
  if (o_.prefetch < 1) o_.prefetch = 1;
  if (o_.pin_memory && !core::cuda_available()) o_.pin_memory = false;
  for (int i = 0; i < o_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
}

int64_t Loader::batches_per_epoch() const {
  int64_t n = static_cast<int64_t>(ds_->size());
  const int64_t w = o_.shard_count, bs = o_.batch_size;
  if (w > 1) {  // this shard's size (shard_order)
    const int64_t total = shard_total(n, o_);
    n = total / w + (o_.shard_rank < total % w ? 1 : 0);
  }
  return o_.drop_last ? n / bs : (n + bs - 1) / bs;
}

void Loader::start_epoch(int64_t epoch, int64_t skip_batches) {
  auto order = shard_order(epoch_order(*ds_, o_, epoch), o_);
  std::lock_guard<std::mutex> lk(mu_);
  order_ = std::make_shared<const std::vector<int64_t>>(std::move(order));
  epoch_ = epoch;
  nbatches_ = batches_per_epoch();
  next_dispatch_ = next_return_ = std::clamp<int64_t>(skip_batches, 0, nbatches_);
  ++generation_;
  ready_.clear();
  errors_.clear();
  cv_work_.notify_all();
}

torch::Tensor Loader::alloc_images(const std::vector<int64_t>& shape) const {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  if (o_.pin_memory) return torch::empty(shape, opts.pinned_memory(true));  // torch caches pinned blocks
  // Reuse a batch buffer the consumer has released (only the pool still refers to it): a fresh
  // multi-MB buffer per batch costs a page fault per 4 KiB on first touch.
  std::lock_guard<std::mutex> lk(pool_mu_);
  for (auto& t : pool_)
    if (t.use_count() == 1 && t.storage().use_count() == 1 && t.sizes().vec() == shape) return t;
  auto t = torch::empty(shape, opts);
  if (pool_.size() < static_cast<size_t>(o_.prefetch + o_.workers + 4)) pool_.push_back(t);
  return t;
}

Batch Loader::build(int64_t batch, const std::vector<int64_t>& order, int64_t epoch) const {
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t begin = batch * o_.batch_size, end = std::min(n, begin + o_.batch_size);
  const int64_t m = end - begin;
  Batch b;
  b.labels = torch::empty({m}, torch::kInt64);
  b.indices = torch::empty({m}, torch::kInt64);
  auto* lab = b.labels.data_ptr<int64_t>();
  auto* idx = b.indices.data_ptr<int64_t>();
  const auto* dd = dynamic_cast<const DomainDataset*>(ds_.get());
  std::vector<int64_t> shape0;
  int64_t item_numel = 0;
  auto place = [&](int64_t k, int64_t i, const std::vector<int64_t>& shape) -> float* {
    if (k == 0) {
      shape0 = shape;
      std::vector<int64_t> full = {m};
      full.insert(full.end(), shape0.begin(), shape0.end());
      b.images = alloc_images(full);
      item_numel = 1;
      for (auto v : shape0) item_numel *= v;
    } else if (shape != shape0) {
      auto named = [&](int64_t item) {
        auto p = ds_->path(static_cast<size_t>(item));
        return p.empty() ? core::str("item ", item) : core::str("item ", item, " '", p, "'");
      };
      throw core::Error(core::str("cannot stack a batch: ", named(i), " has shape ", torch::IntArrayRef(shape), " but ",
                                  named(order[static_cast<size_t>(begin)]), " has ", torch::IntArrayRef(shape0), " (",
                                  ds_->describe(), "); add resize/center_crop (and grey_to_rgb) to the transform"));
    }
    return b.images.data_ptr<float>() + k * item_numel;
  };
  for (int64_t k = 0; k < m; ++k) {
    int64_t i = order[static_cast<size_t>(begin + k)];
    const uint64_t seed = item_seed(o_.seed, epoch, i);
    if (dd) {  // fast path: transform straight into the batch buffer
      auto p = dd->get_prepared(static_cast<size_t>(i), seed);
      float* dst = place(k, i, {p.image.c, p.image.h, p.image.w});
      write_chw(p.image, dst, p.scale.empty() ? nullptr : p.scale.data(), p.shift.empty() ? nullptr : p.shift.data());
      lab[k] = p.label;
      idx[k] = static_cast<int64_t>(p.index);
      continue;
    }
    Sample s = ds_->get(static_cast<size_t>(i), seed);
    auto img = s.image.contiguous();
    check(img.scalar_type() == torch::kFloat32, "dataset returned a non-float32 image for item ", i);
    float* dst = place(k, i, img.sizes().vec());
    std::memcpy(dst, img.data_ptr<float>(), static_cast<size_t>(img.numel()) * sizeof(float));
    lab[k] = s.label;
    idx[k] = s.index;
  }
  return b;
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_work_.wait(lk, [&] {
      return stop_ || (next_dispatch_ < nbatches_ && next_dispatch_ < next_return_ + o_.prefetch);
    });
    if (stop_) return;
    int64_t k = next_dispatch_++;
    uint64_t gen = generation_;
    auto order = order_;
    int64_t epoch = epoch_;
    lk.unlock();
    Batch b;
    std::exception_ptr err;
    try {
      b = build(k, *order, epoch);
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    if (gen != generation_) continue;  // epoch restarted meanwhile: drop
    if (err) errors_[k] = err;
    else ready_[k] = std::move(b);
    cv_ready_.notify_all();
  }
}

bool Loader::next(Batch& b) {
  if (epoch_ < 0) return false;
  if (threads_.empty()) {
    if (next_return_ >= nbatches_) return false;
    b = build(next_return_, *order_, epoch_);
    ++next_return_;
    return true;
  }
  std::unique_lock<std::mutex> lk(mu_);
  if (next_return_ >= nbatches_) return false;
  const int64_t k = next_return_;
  cv_ready_.wait(lk, [&] { return ready_.count(k) || errors_.count(k); });
  if (errors_.count(k)) {
    auto e = errors_[k];
    errors_.erase(k);
    ++next_return_;
    cv_work_.notify_all();
    std::rethrow_exception(e);
  }
  b = std::move(ready_[k]);
  ready_.erase(k);
  ++next_return_;
  cv_work_.notify_all();
  return true;
}

void Loader::drain() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++generation_;  // batches still being built are dropped when they finish
    ready_.clear();
    errors_.clear();
    nbatches_ = next_dispatch_ = next_return_;
  }
  std::lock_guard<std::mutex> lk(pool_mu_);
  pool_.clear();
}

// ------------------------------------------------------------------ ForeverIterator
ForeverIterator::ForeverIterator(DatasetPtr ds, LoaderOptions o) : loader_(std::move(ds), o) {
  core::check_usage(loader_.batches_per_epoch() > 0, "the dataset has ", loader_.dataset().size(),
                    " items: fewer than one batch of ", o.batch_size, " with drop_last (", loader_.dataset().describe(), ")");
}

Batch ForeverIterator::next() {
  if (!started_) {
    loader_.start_epoch(epoch_);
    started_ = true;
  }
  const auto k = static_cast<size_t>(loader_.options().preload);
  if (k > 0 && preloaded_.size() == k) return preloaded_[cycle_++ % k];
  Batch b;
  while (!loader_.next(b)) loader_.start_epoch(++epoch_);
  if (k > 0) {
    preloaded_.push_back(b);
    if (preloaded_.size() == k) loader_.drain();  // the cycle needs no more batches: free the prefetch queue
  }
  return b;
}

nlohmann::json ForeverIterator::state() const {
  const auto& o = loader_.options();
  return {{"epoch", epoch_},
          {"batch", started_ ? loader_.position() : 0},
          {"seed", o.seed},
          {"batch_size", o.batch_size},
          {"dataset_size", loader_.dataset().size()},
          {"balanced", o.balanced},
          {"shuffle", o.shuffle},
          {"shards", o.shard_count}};
}

void ForeverIterator::restore(const nlohmann::json& s) {
  const auto& o = loader_.options();
  try {
    core::check(s.at("seed").get<uint64_t>() == o.seed && s.at("batch_size").get<int64_t>() == o.batch_size &&
                    s.at("dataset_size").get<size_t>() == loader_.dataset().size(),
                "iterator state does not match this loader (seed ", s.at("seed"), " vs ", o.seed, ", batch size ",
                s.at("batch_size"), " vs ", o.batch_size, ", dataset size ", s.at("dataset_size"), " vs ",
                loader_.dataset().size(), ")");
    core::check(s.value("shards", int64_t{1}) == o.shard_count, "iterator state was saved with ",
                s.value("shards", int64_t{1}), " data shards (processes), this loader has ", o.shard_count);
    epoch_ = s.at("epoch").get<int64_t>();
    loader_.start_epoch(epoch_, s.at("batch").get<int64_t>());
    started_ = true;
  } catch (const nlohmann::json::exception& e) {
    throw core::Error(str("malformed iterator state: ", e.what()));
  }
}

}  // namespace shiftlab::data
