// Batched loading: a threaded Loader over one epoch and an endless ForeverIterator (TLlib's
// ForeverDataIterator) with exact save/restore of its position.
//
// Order of epoch e: identity, or a permutation drawn from Rng(mix(seed, e)) (shuffle), or N draws
// with replacement with probability ∝ 1 / count(label) (balanced); in distributed training each
// process then takes its strided shard of that order (shard_order). Item i of epoch e is
// transformed with seed mix(seed, e, i), so a batch is bit-identical whatever the number of
// workers and whichever thread decodes it.
#pragma once

#include <torch/types.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/options.h"

namespace shiftlab::data {

/// One batch: images N×C×H×W float32, labels N int64 (−1 unlabelled), indices N int64 (dataset
/// positions).
struct Batch {
  torch::Tensor images;
  torch::Tensor labels;
  torch::Tensor indices;
};

/// Sample order of one epoch (see the file comment).
std::vector<int64_t> epoch_order(const Dataset& ds, const LoaderOptions& o, int64_t epoch);
/// Positions shard_rank, shard_rank + shard_count, ... of `order` (see LoaderOptions::shard_*).
/// The shards of one order are disjoint; without padding their union is the whole order (minus
/// the last size mod shard_count items when even && drop_last). Batch k of every shard with
/// batch size b together holds exactly batch k of the unsharded order with batch size
/// b * shard_count, so a data-parallel run sees the same global batches as one process.
std::vector<int64_t> shard_order(const std::vector<int64_t>& order, const LoaderOptions& o);
/// The per-item transform seed used by the loader.
uint64_t item_seed(uint64_t seed, int64_t epoch, int64_t index);

/// One pass over a dataset in batches: `workers` threads build whole batches (decode, transform,
/// stack) into a bounded queue of `prefetch` batches; next() returns them in order.
/// The last partial batch is kept unless drop_last.
class Loader {
 public:
  Loader(DatasetPtr ds, LoaderOptions o);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// Starts epoch `epoch` at its batch `skip_batches` (for resume; skipped batches are not built).
  void start_epoch(int64_t epoch, int64_t skip_batches = 0);
  /// Next batch of the current epoch; false at its end (or before start_epoch). Rethrows a
  /// worker's error.
  bool next(Batch& b);
  int64_t batches_per_epoch() const;
  /// Ends the current epoch here: no further batches are built, prefetched ones and the buffer
  /// pool are released (next() returns false until start_epoch).
  void drain();
  int64_t epoch() const { return epoch_; }
  /// Batches of the current epoch returned so far (including skipped ones).
  int64_t position() const { return next_return_; }
  const Dataset& dataset() const { return *ds_; }
  const LoaderOptions& options() const { return o_; }

 private:
  Batch build(int64_t batch, const std::vector<int64_t>& order, int64_t epoch) const;
  void worker_loop();
  torch::Tensor alloc_images(const std::vector<int64_t>& shape) const;
  mutable std::mutex pool_mu_;
  mutable std::vector<torch::Tensor> pool_;  ///< batch buffers handed out, reused once released
  DatasetPtr ds_;
  LoaderOptions o_;
  std::shared_ptr<const std::vector<int64_t>> order_;  ///< replaced, never mutated, per epoch
  int64_t epoch_ = -1;
  int64_t nbatches_ = 0;
  int64_t next_dispatch_ = 0, next_return_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> errors_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  std::vector<std::thread> threads_;
};

/// Endless batches across epochs: when an epoch ends the next starts. state() records (epoch,
/// batch position, seed, sizes); restore() on a fresh iterator built with the same dataset and
/// options reproduces exactly the batches that followed. With LoaderOptions::preload = K > 0 the
/// first K batches are built once and then returned in a cycle (benchmarks: the compute-only
/// ceiling, no data pipeline in the loop).
class ForeverIterator {
 public:
  ForeverIterator(DatasetPtr ds, LoaderOptions o);
  Batch next();
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);
  int64_t batches_per_epoch() const { return loader_.batches_per_epoch(); }
  int64_t epoch() const { return epoch_; }
  Loader& loader() { return loader_; }

 private:
  Loader loader_;
  int64_t epoch_ = 0;
  bool started_ = false;
  std::vector<Batch> preloaded_;
  size_t cycle_ = 0;
};

}  // namespace shiftlab::data
