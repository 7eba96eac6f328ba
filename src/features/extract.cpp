#include "features/extract.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <set>

#include "core/log.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "core/test_hooks.h"
#include "data/datasets.h"
#include "data/loader.h"
#include "data/options.h"
#include "data/roles.h"
#include "data/suites.h"
#include "models/safetensors.h"

namespace shiftlab::features {

using core::check_usage;

const core::OptionTable<ExtractOptions>& extract_option_table() {
  static const auto table = [] {
    using O = ExtractOptions;
    core::OptionTable<O> t("features::ExtractOptions");
    t.field("taps", &O::taps,
            "taps to extract, comma-separated: backbone taps (shiftlab list backbones; e.g. layer2,layer3,pooled), "
            "'features' (after the bottleneck), 'logits'")
        .command_flag()
        .check([](std::vector<std::string>& taps, const std::string& key) {
          check_usage(!taps.empty(), "option '", key, "': give at least one tap (e.g. --taps=pooled)");
          std::set<std::string> seen;
          for (auto& tap : taps) check_usage(seen.insert(tap).second, "option '", key, "': tap '", tap, "' given twice");
        });
    t.field("pool", &O::pool, "pooling of spatial/token taps: mean, or [mean, max] concatenated")
        .choices({"avg", "avgmax"})
        .command_flag();
    t.field("dtype", &O::dtype, "stored feature type").choices({"float32", "float16"}).command_flag();
    t.field("batch_size", &O::batch_size, "images per forward pass").range(1, 1 << 20).command_flag();
    t.field("workers", &O::workers, "loader threads (0 = in the main thread)").range(0, 256).command_flag();
    t.field("limit", &O::limit, "rows per (domain, split): the first N samples; 0 = all").range(0, 9e18).command_flag();
    t.field("overwrite", &O::overwrite, "replace an existing output file instead of resuming / appending")
        .command_flag();
    t.field("forward_only", &O::forward_only, "benchmark: run the same loop but write nothing").command_flag();
    t.field("source_splits", &O::source_splits,
            "source splits to extract, blocks named by split (default: the roles source/train and source/val as "
            "train defines them)")
        .command_flag();
    t.field("target_splits", &O::target_splits,
            "target splits to extract, blocks named by split (default: the roles target/train and target/test as "
            "train defines them)")
        .command_flag();
    return t;
  }();
  return table;
}

std::vector<ExtractInput> extract_inputs(const core::Config& c, const ExtractOptions& o) {
  std::vector<ExtractInput> v;
  if (o.source_splits.empty() && o.target_splits.empty()) {
    // the run's four roles (data/roles.h), as train defines them: blocks source/train, source/val,
    // target/train, target/test; a held-out role the config does not define is left out (warned)
    auto roles = data::make_roles(data::role_options_from(c), data::RoleMode::Extract);
    const std::shared_ptr<const data::DomainDataset> ds[4] = {roles.source_train, roles.source_val, roles.target_train,
                                                              roles.target_test};
    for (size_t k = 0; k < 4; ++k) {
      const auto& info = roles.info[k];
      if (!ds[k]) {
        core::log_warn("extract: no ", info.role, " block: ", info.error);
        continue;
      }
      auto slash = info.role.find('/');
      ExtractInput in{info.role.substr(0, slash), info.role.substr(slash + 1), ds[k], ds[k]->options().transform,
                      info.definition};
      core::check(in.ds->size() > 0, info.role, " (", in.ds->describe(), ") is empty");
      v.push_back(std::move(in));
    }
    return v;
  }
  // explicit splits (--source_splits / --target_splits): one block per split, named by it
  std::set<std::string> seen;
  auto add = [&](const std::string& domain, const std::string& prefix, std::vector<std::string> splits,
                 const std::string& eval_key) {
    if (splits.empty()) splits = {c.get_string(prefix + ".split"), c.get_string(eval_key)};
    for (auto& split : splits) {
      auto d = data::domain_options_from(c, prefix);
      d.split = split;
      d.labelled = true;  // probes use target labels when the data has them
      auto et = c.get_string(prefix + ".eval_transform");
      if (!et.empty()) d.transform = et;  // never augment what is cached
      std::string group = split;
      if (split.find('/') != std::string::npos || split.find('.') != std::string::npos)
        group = std::filesystem::path(split).stem().string();  // a list file
      check_usage(!group.empty(), "option '", prefix, "' split '", split, "' gives an empty group name");
      if (!seen.insert(domain + "/" + group).second) continue;
      ExtractInput in{domain, group, data::make_domain(d), d.transform, "split " + split};
      core::check(in.ds->size() > 0, domain, " split '", split, "' (", in.ds->describe(), ") is empty");
      v.push_back(std::move(in));
    }
  };
  add("source", "data.source", o.source_splits, "data.source.val_split");
  add("target", "data.target", o.target_splits, "data.target.test_split");
  return v;
}

static std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

Provenance make_provenance(const core::Config& c, int64_t num_classes, const std::string& weights_sha256,
                           const std::string& checkpoint, const std::string& checkpoint_sha256) {
  Provenance p;
  // the keys that change what the network computes in eval mode
  std::string model;
  for (auto& k : c.schema().keys()) {
    if (k.rfind("model.", 0) != 0) continue;
    static const std::set<std::string> skip{"model.weights", "model.strict", "model.freeze", "model.bn",
                                            "model.dropout", "model.drop_path"};
    if (skip.count(k)) continue;
    model += k + " = " + c.get_string(k) + "\n";
  }
  p.compared = {{"backbone", c.get_string("model.backbone")},
                {"model", model},
                {"weights_sha256", weights_sha256},
                {"checkpoint_sha256", checkpoint_sha256}};
  p.info = {{"weights", c.get_string("model.weights")},
            {"checkpoint", checkpoint},
            {"shiftlab_version", core::shiftlab_version()},
            {"created", now_iso()},
            {"config", c.to_ini("# resolved configuration of shiftlab extract\n")},
            {"source_dataset", c.get_string("data.source.dataset")},
            {"target_dataset", c.get_string("data.target.dataset")}};
  // weights a shiftlab run trained (`weights export` records the run in the file's metadata): advise
  // then knows they are not the published ones. Any name: the weights loader tells formats by content,
  // and a file that is not safetensors (a .pth) has no such metadata
  if (const auto weights = c.get_string("model.weights"); !weights.empty()) {
    try {
      auto meta = models::read_safetensors_header(weights).metadata;
      if (meta.count("shiftlab_run")) p.info.emplace_back("weights_trained_by", meta["shiftlab_run"]);
    } catch (const std::exception&) {
    }
  }
  p.info_int = {{"num_classes", num_classes}};
  return p;
}

torch::Tensor pool_features(const models::BackboneImpl& bb, const torch::Tensor& t, const std::string& pool) {
  check_usage(pool == "avg" || pool == "avgmax", "pool '", pool, "' (expected avg or avgmax)");
  if (t.dim() == 2) return t;
  auto avg = models::pool_tap(bb, t);
  if (pool == "avg") return avg;
  if (t.dim() == 4) return torch::cat({avg, t.amax({2, 3})}, 1);
  if (t.dim() == 3) return torch::cat({avg, std::get<0>(t.max(1))}, 1);
  throw core::Error(core::str("cannot pool a tap of ", t.dim(), " dimensions"));
}

std::map<std::string, torch::Tensor> forward_taps(models::ClassifierImpl& model, const torch::Tensor& x,
                                                  const std::vector<std::string>& taps, const std::string& pool) {
  auto bb = model.backbone();
  bool want_head = false;
  std::vector<std::string> bb_taps;
  for (auto& t : taps) {
    if (t == "features" || t == "logits")
      want_head = true;
    else
      bb_taps.push_back(t);
  }
  if (want_head && std::find(bb_taps.begin(), bb_taps.end(), "pooled") == bb_taps.end()) bb_taps.push_back("pooled");
  torch::Tensor in = x;
  auto kids = model.named_children();
  if (auto* a = kids.find("input_adapter"))
    if (!dynamic_cast<torch::nn::IdentityImpl*>(a->get())) in = models::call_child(model, "input_adapter", in);
  auto raw = bb->forward_features(in, bb_taps);
  std::map<std::string, torch::Tensor> out;
  for (auto& t : taps) {
    if (t == "features" || t == "logits") continue;
    out[t] = pool_features(*bb, raw.at(t), pool);
  }
  if (want_head) {
    // eval mode: dropout is the identity; the bottleneck (if any) and the head are named children
    auto f = raw.at("pooled");
    if (kids.find("bottleneck")) f = models::call_child(model, "bottleneck", f);
    if (std::find(taps.begin(), taps.end(), "features") != taps.end()) out["features"] = f;
    if (std::find(taps.begin(), taps.end(), "logits") != taps.end()) out["logits"] = models::call_child(model, "head", f);
  }
  return out;
}

namespace {

/// Rows [begin, end) of a dataset, in order.
class RangeDataset : public data::Dataset {
 public:
  RangeDataset(data::DatasetPtr ds, size_t begin, size_t end) : ds_(std::move(ds)), begin_(begin), end_(end) {}
  size_t size() const override { return end_ - begin_; }
  data::Sample get(size_t i, uint64_t seed) const override { return ds_->get(begin_ + i, seed); }
  int64_t num_classes() const override { return ds_->num_classes(); }
  std::vector<int64_t> labels() const override {
    auto l = ds_->labels();
    return {l.begin() + static_cast<std::ptrdiff_t>(begin_), l.begin() + static_cast<std::ptrdiff_t>(end_)};
  }
  std::string describe() const override { return ds_->describe(); }
  std::string path(size_t i) const override { return ds_->path(begin_ + i); }

 private:
  data::DatasetPtr ds_;
  size_t begin_, end_;
};

}  // namespace

ExtractReport extract(models::ClassifierImpl& model, const std::vector<ExtractInput>& inputs, const ExtractOptions& o,
                      const Provenance& prov, const std::string& out, const torch::Device& device,
                      const ExtractRanks& ranks) {
  const bool dist = ranks.count > 1;
  check_usage(!inputs.empty(), "nothing to extract (no domains / splits)");
  torch::NoGradGuard no_grad;
  model.eval();
  auto bb = model.backbone();
  {
    auto names = bb->tap_names();
    std::string known;
    for (auto& n : names) known += n + ", ";
    for (auto& t : o.taps)
      check_usage(t == "features" || t == "logits" || std::find(names.begin(), names.end(), t) != names.end(),
                  "option 'taps': backbone '", prov.compared.empty() ? "" : prov.compared[0].second, "' has no tap '",
                  t, "' (taps: ", known, "features, logits)");
  }
  ExtractReport rep;
  // tap widths from a dry forward on one sample
  {
    auto x = inputs[0].ds->get(0, 0).image.unsqueeze(0).to(device);
    auto f = forward_taps(model, x, o.taps, o.pool);
    for (auto& t : o.taps) rep.taps.push_back({t, f.at(t).size(1)});
  }
  CacheLayout layout;
  layout.taps = rep.taps;
  layout.pool = o.pool;
  layout.dtype = o.dtype;
  for (auto& in : inputs) {
    CacheBlock b;
    b.domain = in.domain;
    b.split = in.group;
    b.dataset = in.ds->describe();
    b.transform = in.transform;
    b.origin = in.origin;
    b.num_classes = in.ds->num_classes();
    size_t n = in.ds->size();
    if (o.limit > 0) n = std::min<size_t>(n, static_cast<size_t>(o.limit));
    auto labels = in.ds->labels();
    b.labels.assign(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(n));
    b.index.resize(n);
    bool any_path = false;
    b.paths.resize(n);
    for (size_t i = 0; i < n; ++i) {
      b.index[i] = static_cast<int64_t>(i);
      b.paths[i] = in.ds->path(i);
      any_path = any_path || !b.paths[i].empty();
    }
    if (!any_path) b.paths.clear();
    if (auto* dd = dynamic_cast<const data::DomainDataset*>(in.ds.get())) {
      b.item_hash.resize(n);
      for (size_t i = 0; i < n; ++i) b.item_hash[i] = static_cast<int64_t>(data::suites::fnv1a(dd->raw().item_id(i)));
    }
    layout.blocks.push_back(std::move(b));
  }
  std::unique_ptr<CacheWriter> w;
  if (!o.forward_only && ranks.rank == 0) {  // rank 0 alone writes
    w = std::make_unique<CacheWriter>(out, layout, prov, o.overwrite);
    w->set_kill_in_write(core::test_hooks().kill_in_write);
  }
  std::vector<int64_t> start(layout.blocks.size(), 0);
  int64_t todo = 0;
  for (size_t b = 0; b < layout.blocks.size(); ++b) {
    start[b] = w ? w->resume_row(b) : 0;
  }
  if (dist) {  // the other ranks learn where the file stops from rank 0
    auto t = torch::tensor(start, torch::kDouble);
    ranks.allreduce_sum(t);
    for (size_t b = 0; b < start.size(); ++b) start[b] = static_cast<int64_t>(t[static_cast<int64_t>(b)].item<double>());
  }
  for (size_t b = 0; b < layout.blocks.size(); ++b) {
    rep.rows_resumed += start[b];
    todo += layout.blocks[b].rows() - start[b];
  }
  if (rep.rows_resumed > 0)
    core::log_info("resuming '", out, "': ", rep.rows_resumed, " rows already written, ", todo, " to go");
  core::Progress progress(o.forward_only ? "forward" : "extract", todo);
  auto t0 = std::chrono::steady_clock::now();
  for (size_t b = 0; b < layout.blocks.size() && !rep.interrupted; ++b) {
    const auto& blk = layout.blocks[b];
    if (start[b] >= blk.rows()) continue;
    core::log_info(blk.domain, "/", blk.split, ": ", inputs[b].ds->describe(), ", rows ", start[b], "..", blk.rows());
    auto range = std::make_shared<RangeDataset>(inputs[b].ds, static_cast<size_t>(start[b]),
                                                static_cast<size_t>(blk.rows()));
    data::LoaderOptions lo;
    lo.batch_size = o.batch_size;
    lo.workers = o.workers;
    lo.shuffle = false;
    lo.drop_last = false;
    lo.pin_memory = device.is_cuda();
    lo.shard_rank = ranks.rank;
    lo.shard_count = ranks.count;
    lo.shard_even = true;  // padded: equal batches on every rank; rank 0 drops the padding
    data::Loader loader(range, lo);
    loader.start_epoch(0);
    data::Batch batch;
    int64_t row = start[b];
    while (loader.next(batch)) {
      auto x = batch.images.to(device, device.is_cuda());
      auto f = forward_taps(model, x, o.taps, o.pool);
      int64_t n = x.size(0);
      if (dist) {
        // count × n × D -> rows in order: batch k of rank r holds rows r + count·(k·n + j)
        const int64_t rows = std::min<int64_t>(n * ranks.count, blk.rows() - row);
        for (auto& kv : f)
          kv.second = ranks.allgather(kv.second.contiguous())
                          .transpose(0, 1)
                          .reshape({n * ranks.count, -1})
                          .narrow(0, 0, rows);
        n = rows;
      }
      if (w) {
        w->write(b, row, f);
      } else {
        // forward_only: bring results to the host as write would (waits for the device)
        if (device.is_cuda())
          for (auto& kv : f) kv.second = kv.second.to(torch::kCPU);
      }
      row += n;
      rep.rows += n;
      progress.update(rep.rows);
      bool stop = core::stop_requested();
      if (dist) {  // the ranks stop together
        auto t = torch::full({1}, stop ? 1.0 : 0.0, torch::kDouble);
        ranks.allreduce_sum(t);
        stop = t.item<double>() > 0;
      }
      if (stop) {
        rep.interrupted = true;
        break;
      }
    }
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rep.images_per_s = rep.seconds > 0 ? rep.rows / rep.seconds : 0;
  progress.finish();
  if (w) {
    rep.write_seconds = w->write_seconds();
    w->close();
  }
  return rep;
}

}  // namespace shiftlab::features
