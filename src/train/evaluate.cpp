#include "train/evaluate.h"

#include <cmath>

#include "data/loader.h"

namespace shiftlab::train {

nlohmann::json EvalResult::to_json(bool with_matrix) const {
  nlohmann::json j;
  j["n"] = n;
  j["accuracy"] = accuracy;
  j["mean_class_accuracy"] = mean_class_accuracy;
  j["entropy"] = entropy;
  nlohmann::json pc = nlohmann::json::array();
  for (double v : per_class) pc.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr));
  j["per_class_accuracy"] = pc;
  if (with_matrix) j["confusion"] = confusion;
  return j;
}

EvalResult result_from_counts(std::vector<std::vector<int64_t>> confusion, int64_t n, double entropy_sum) {
  EvalResult r;
  const int64_t k = static_cast<int64_t>(confusion.size());
  r.n = n;
  r.entropy = n ? entropy_sum / static_cast<double>(n) : 0.0;
  r.confusion = std::move(confusion);
  int64_t correct = 0;
  for (int64_t c = 0; c < k; ++c)
    for (int64_t p = 0; p < k; ++p) {
      r.n_labelled += r.confusion[c][p];
      if (c == p) correct += r.confusion[c][p];
    }
  r.accuracy = r.n_labelled ? 100.0 * correct / r.n_labelled : std::nan("");
  double sum = 0;
  int present = 0;
  for (int64_t c = 0; c < k; ++c) {
    int64_t tot = 0;
    for (auto v : r.confusion[c]) tot += v;
    double acc = tot ? 100.0 * r.confusion[c][c] / tot : std::nan("");
    r.per_class.push_back(acc);
    if (tot) {
      sum += acc;
      ++present;
    }
  }
  r.mean_class_accuracy = present ? sum / present : std::nan("");
  return r;
}

EvalResult summarize(const torch::Tensor& logits_in, const torch::Tensor& labels_in, int64_t k) {
  auto logits = logits_in.to(torch::kCPU, torch::kFloat);
  auto labels = labels_in.to(torch::kCPU, torch::kLong);
  const int64_t n = logits.size(0);
  auto logp = torch::log_softmax(logits, 1);
  const double entropy_sum = n ? -(logp.exp() * logp).sum(1).sum().item<double>() : 0.0;
  auto pred = logits.argmax(1);
  std::vector<std::vector<int64_t>> confusion(static_cast<size_t>(k), std::vector<int64_t>(static_cast<size_t>(k), 0));
  auto pa = pred.accessor<int64_t, 1>();
  auto la = labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i)
    if (la[i] >= 0 && la[i] < k) confusion[la[i]][pa[i]]++;
  return result_from_counts(std::move(confusion), n, entropy_sum);
}

EvalResult evaluate(models::ClassifierImpl& model, const data::DatasetPtr& ds, int64_t batch_size, int workers,
                    const torch::Device& device, int64_t num_classes, int64_t shard_rank, int64_t shard_count) {
  torch::NoGradGuard ng;
  bool was_training = model.is_training();
  model.eval();
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.workers = workers;
  lo.shuffle = false;
  lo.drop_last = false;
  lo.pin_memory = device.is_cuda();
  lo.shard_rank = shard_rank;
  lo.shard_count = shard_count;
  lo.shard_even = false;  // every item exactly once over the shards
  data::Loader loader(ds, lo);
  loader.start_epoch(0);
  std::vector<torch::Tensor> logits, labels;
  data::Batch b;
  while (loader.next(b)) {
    auto out = model.forward(b.images.to(device, /*non_blocking=*/true));
    logits.push_back(out.logits.to(torch::kCPU, torch::kFloat));
    labels.push_back(b.labels);
  }
  model.train(was_training);
  if (logits.empty()) return summarize(torch::zeros({0, num_classes}), torch::zeros({0}, torch::kLong), num_classes);
  return summarize(torch::cat(logits), torch::cat(labels), num_classes);
}

}  // namespace shiftlab::train
