#include "train/trainer.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/format.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "core/test_hooks.h"
#include "data/loader.h"
#include "models/adapter_hook.h"
#include "models/classifier.h"
#include "models/param_groups.h"
#include "train/autocast.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/evaluate.h"
#include "train/optimizers.h"

namespace shiftlab::train {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------- AdaBN

template <typename Fn>
static void for_each_bn(torch::nn::Module& m, Fn fn) {
  for (auto& sub : m.modules(/*include_self=*/true)) {
    if (auto* b2 = dynamic_cast<torch::nn::BatchNorm2dImpl*>(sub.get())) fn(*b2);
    else if (auto* b1 = dynamic_cast<torch::nn::BatchNorm1dImpl*>(sub.get())) fn(*b1);
  }
}

void adabn_recompute(models::ClassifierImpl& model, const data::DatasetPtr& ds, int64_t batch_size, int workers,
                     const torch::Device& device, int64_t max_batches) {
  torch::NoGradGuard ng;
  bool was = model.is_training();
  // evaluation mode except BatchNorm: the statistics must be those of the features evaluation
  // sees (no dropout, no stochastic depth), each BatchNorm normalising with its batch's statistics
  model.train(false);
  std::vector<c10::optional<double>> momenta;
  for_each_bn(model, [&](auto& bn) {
    momenta.push_back(bn.options.momentum());
    bn.options.momentum(c10::nullopt);  // cumulative average over the batches seen
    bn.reset_running_stats();
    bn.train(true);
  });
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.workers = workers;
  lo.shuffle = true;
  lo.drop_last = false;
  data::Loader loader(ds, lo);
  loader.start_epoch(0);
  data::Batch b;
  for (int64_t i = 0; i < max_batches && loader.next(b); ++i) model.forward(b.images.to(device));
  size_t k = 0;
  for_each_bn(model, [&](auto& bn) { bn.options.momentum(momenta[k++]); });
  model.train(was);
}

EvalResult evaluate_adapted(models::ClassifierImpl& model, const data::DatasetPtr& ds, const data::DatasetPtr& adapt_on,
                            bool adabn, int64_t batch_size, int workers, const torch::Device& device,
                            int64_t num_classes, int64_t shard_rank, int64_t shard_count) {
  if (!adabn) return evaluate(model, ds, batch_size, workers, device, num_classes, shard_rank, shard_count);
  std::map<std::string, torch::Tensor> saved;
  for (auto& b : model.named_buffers()) saved[b.key()] = b.value().clone();
  adabn_recompute(model, adapt_on, batch_size, workers, device);
  auto r = evaluate(model, ds, batch_size, workers, device, num_classes, shard_rank, shard_count);
  torch::NoGradGuard ng;
  for (auto& b : model.named_buffers()) b.value().copy_(saved.at(b.key()));
  return r;
}

// ---------------------------------------------------------------- state

struct Trainer::State {
  Experiment& e;
  const core::Config& cfg;
  const core::RunDir& run;
  Communicator* comm = nullptr;  // null: one process
  bool main = true;              // rank 0 (or one process): the only writer
  int world = 1;
  std::unique_ptr<GradReducer> reducer;
  bool stop_all = false;         // a stop request reached some rank (agreed through the step all-reduce)
  TrainOptions to;
  OptimOptions oo;
  ScheduleOptions so;
  models::ParamGroupOptions pgo;
  std::unique_ptr<torch::optim::Optimizer> opt;
  std::vector<double> base_lrs;
  std::vector<torch::Tensor> trainable;
  std::unique_ptr<data::ForeverIterator> src_it, tgt_it;
  core::MetricsWriter metrics;
  Selection sel;  // saved in checkpoints
  int phase = 2;  // 1 = head-only phase of the two-phase recipe
  bool uses_target = false;
  models::ModelOptions mo;
  json summary = json::object();  // summary.json while running (status, error)
  json params = json::object();   // parameter counts of the current optimizer (summary "parameters")
  // log accumulation
  std::map<std::string, torch::Tensor> acc;
  int64_t acc_n = 0;
  double images = 0, train_seconds = 0;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();  // of the current log interval
  core::Progress* progress = nullptr;                                          // fit()'s, while it runs

  State(Experiment& e_, const core::Config& c, const core::RunDir& r, Communicator* cm)
      : e(e_), cfg(c), run(r), comm(cm), metrics(r.path()) {
    if (comm) {
      main = comm->is_main();
      world = comm->world_size();
    }
    to = train_options_from(c);
    to.eval_batch_size = eval_batch_size(to, e.source_loader.batch_size, e.device.is_cuda());  // resolve 0 = auto
    oo = optim_options_from(c);
    so = schedule_options_from(c);
    pgo = models::param_group_options_from(c);
  }

  std::string ckpt(const std::string& name) const { return run.file(name); }

  void build_optimizer(bool head_only) {
    auto pg = pgo;
    if (head_only && to.phase1_lr > 0) pg.lr = to.phase1_lr;
    auto groups = models::make_param_groups(*e.model, pg);
    auto mparams = e.method->parameters();
    if (!mparams.empty()) {
      models::ParamGroup g;
      g.name = "method";
      g.params = mparams;
      g.lr = pg.lr;
      g.weight_decay = pg.weight_decay;
      g.numel = 0;
      for (auto& p : mparams) g.numel += p.numel();
      groups.push_back(g);
    }
    core::check(!groups.empty(), "nothing to train: every parameter is frozen (model.freeze = ",
                cfg.get_string("model.freeze"), ")");
    core::log_info("parameter groups:\n", models::param_group_table(groups));
    int64_t total = 0, train = 0;
    for (auto& p : e.model->parameters()) {
      total += p.numel();
      if (p.requires_grad()) train += p.numel();
    }
    int64_t method_n = 0;
    for (auto& p : mparams) method_n += p.numel();
    int64_t adapter_n = 0;
    {
      auto params = e.model->backbone()->named_parameters(true);
      for (auto& n : models::adapter_parameter_names(*e.model->backbone()))
        if (auto* t = params.find(n)) adapter_n += t->numel();
    }
    core::log_info("trainable parameters: model ", train, " of ", total, " (",
                   core::str(std::round(1e4 * train / std::max<int64_t>(1, total)) / 100.0), " %",
                   adapter_n ? core::str("; adapters ", adapter_n, ", ",
                                         std::round(1e4 * adapter_n / std::max<int64_t>(1, total)) / 100.0, " %")
                             : std::string(),
                   "), method ", method_n);
    params = {{"model", total}, {"trainable", train}, {"adapters", adapter_n}, {"method", method_n}};
    if (to.save == "trainable") {
      // the frozen tensors must be rebuilt from model.weights when an adapter-only checkpoint loads
      std::string frozen;
      for (auto& kv : e.model->named_parameters(true))
        if (!kv.value().requires_grad() && frozen.empty()) frozen = kv.key();
      core::check_usage(frozen.empty() || (!e.weights_sha256.empty() && cfg.get_bool("model.strict")),
                        "train.save = trainable: frozen tensors such as '", frozen,
                        "' must come from model.weights (set model.weights with model.strict = true, or use "
                        "train.save = full)");
    }
    std::vector<OptimizerGroup> og;
    base_lrs.clear();
    trainable.clear();
    for (auto& g : groups) {
      base_lrs.push_back(g.lr);
      for (auto& p : g.params) trainable.push_back(p);
      og.push_back({g.params, g.lr, g.weight_decay});
    }
    opt = make_optimizer(og, oo, pgo.lr);  // optim.name from the "optimizers" registry
    if (comm) {
      // every trainable tensor (backbone, head, the method's discriminator, ...) is averaged
      reducer.reset();
      std::vector<torch::Tensor> with_grad;
      for (auto& p : trainable)
        if (p.requires_grad()) with_grad.push_back(p);
      reducer = std::make_unique<GradReducer>(*comm, with_grad, comm->options().bucket_mb, comm->options().overlap);
    }
  }

  // Every parameter and buffer of the model and the method, in a fixed order.
  std::vector<torch::Tensor> state_tensors() const {
    std::vector<torch::Tensor> v;
    for (auto* m :
         {static_cast<torch::nn::Module*>(e.model.ptr().get()), static_cast<torch::nn::Module*>(e.method.get())}) {
      for (auto& p : m->parameters(true)) v.push_back(p);
      for (auto& b : m->buffers(true)) v.push_back(b);
    }
    return v;
  }
  std::vector<torch::Tensor> buffers() const {
    std::vector<torch::Tensor> v;
    for (auto& b : e.model->buffers(true)) v.push_back(b);
    for (auto& b : e.method->buffers(true)) v.push_back(b);
    return v;
  }

  json meta(int64_t next_step) const {
    json m;
    m["step"] = next_step;
    m["phase"] = phase;
    m["world_size"] = world;
    m["num_classes"] = e.num_classes;
    m["source_iter"] = src_it->state();
    if (tgt_it) m["target_iter"] = tgt_it->state();
    m["best_score"] = std::isfinite(sel.best_score) ? json(sel.best_score) : json(nullptr);
    m["best_step"] = sel.best_step;
    m["best_eval"] = sel.best_eval;
    m["oracle_best"] = std::isfinite(sel.oracle_best) ? json(sel.oracle_best) : json(nullptr);
    m["oracle_step"] = sel.oracle_step;
    m["last_eval"] = sel.last_eval;
    m["evals_since_best"] = sel.evals_since_best;
    json a = json::object();
    for (auto& [k, v] : acc) a[k] = v.item<double>();
    m["acc"] = a;
    m["acc_n"] = acc_n;
    m["images"] = images;
    m["train_seconds"] = train_seconds;
    return m;
  }

  void restore_meta(const json& m) {
    phase = m.value("phase", 2);
    src_it->restore(m.at("source_iter"));
    if (tgt_it && m.contains("target_iter")) tgt_it->restore(m.at("target_iter"));
    sel.best_score = m["best_score"].is_null() ? -std::numeric_limits<double>::infinity() : m["best_score"].get<double>();
    sel.best_step = m.value("best_step", int64_t{-1});
    sel.best_eval = m.value("best_eval", json::object());
    sel.oracle_best =
        m["oracle_best"].is_null() ? -std::numeric_limits<double>::infinity() : m["oracle_best"].get<double>();
    sel.oracle_step = m.value("oracle_step", int64_t{-1});
    sel.last_eval = m.value("last_eval", json::object());
    sel.evals_since_best = m.value("evals_since_best", int64_t{0});
    acc.clear();
    const json acc_saved = m.value("acc", json::object());  // iterating the temporary itself would dangle
    for (auto& [k, v] : acc_saved.items())
      acc[k] = torch::tensor(v.get<double>(), torch::kDouble).to(e.device);
    acc_n = m.value("acc_n", int64_t{0});
    images = m.value("images", 0.0);
    train_seconds = m.value("train_seconds", 0.0);
  }

  // the weights file the model was built from (adapter-only checkpoints refer to it)
  void base_reference(CheckpointParts& p) const {
    p.base_weights = cfg.get_string("model.weights");
    p.base_sha256 = e.weights_sha256;
  }

  // Every rank calls this at the same points (it gathers the ranks' RNG states); rank 0 writes.
  void save(const std::string& name, int64_t next_step, bool with_optimizer) {
    torch::Tensor rng_states;
    if (comm) rng_states = comm->allgather(cpu_rng_state(), "RNG state gather for checkpoint " + name);
    if (!main) return;
    CheckpointParts p;
    p.rank_rng_states = rng_states;
    p.model = e.model.ptr().get();
    p.method = e.method.get();
    p.optimizer = with_optimizer ? opt.get() : nullptr;
    p.meta = meta(next_step);
    base_reference(p);
    p.trainable_only = to.save == "trainable";
    save_checkpoint(ckpt(name), p);
  }

  // Sums the disjoint shards' counts over the ranks (distributed evaluation).
  EvalResult combine(const EvalResult& local, const std::string& what) {
    if (!comm) return local;
    const size_t k = local.confusion.size();
    auto t = torch::zeros({static_cast<int64_t>(2 + k * k)}, torch::kDouble);
    auto a = t.accessor<double, 1>();
    a[0] = static_cast<double>(local.n);
    a[1] = local.entropy * static_cast<double>(local.n);
    for (size_t i = 0; i < k; ++i)
      for (size_t j = 0; j < k; ++j)
        a[static_cast<int64_t>(2 + i * k + j)] = static_cast<double>(local.confusion[i][j]);
    comm->allreduce_sum(t, what);
    std::vector<std::vector<int64_t>> conf(k, std::vector<int64_t>(k));
    for (size_t i = 0; i < k; ++i)
      for (size_t j = 0; j < k; ++j) conf[i][j] = std::llround(a[static_cast<int64_t>(2 + i * k + j)]);
    return result_from_counts(std::move(conf), std::llround(a[0]), a[1]);
  }

  json evaluate_now(int64_t step) {
    const int64_t rank = comm ? comm->rank() : 0;
    // every rank evaluates rank 0's model (without dist.sync_bn the BatchNorm running statistics
    // drift apart, as in DDP without broadcast_buffers) on its shard of the evaluation sets
    if (comm) comm->broadcast(buffers(), core::str("buffer broadcast before the evaluation at step ", step));
    auto sv = combine(evaluate(*e.model, e.source_val, to.eval_batch_size, to.eval_workers, e.device, e.num_classes,
                               rank, world),
                      core::str("source-val evaluation at step ", step));
    auto tt = combine(evaluate_adapted(*e.model, e.target_test, e.target, e.method->adabn(), to.eval_batch_size,
                                       to.eval_workers, e.device, e.num_classes, rank, world),
                      core::str("target-test evaluation at step ", step));
    json r;
    r["step"] = step;
    r["phase"] = phase;
    // the roles were checked to be labelled before training (data/roles.h); a non-finite accuracy
    // here would be a number computed on no labelled image, never reported as such
    core::check(sv.n_labelled > 0 && std::isfinite(sv.accuracy), "source-val evaluation at step ", step,
                " saw no labelled image (", e.source_val->describe(), ")");
    core::check(tt.n_labelled > 0 && std::isfinite(tt.accuracy), "target-test evaluation at step ", step,
                " saw no labelled image (", e.target_test->describe(), ")");
    r["source_val_acc"] = sv.accuracy;
    r["source_val_n"] = sv.n_labelled;
    r["target_test_acc"] = tt.accuracy;
    r["target_test_n"] = tt.n_labelled;
    r["target_test_mean_class_acc"] = tt.mean_class_accuracy;
    r["target_entropy"] = tt.entropy;
    r["target_test_per_class"] = tt.to_json()["per_class_accuracy"];
    r["target_test_confusion"] = tt.confusion;
    return r;
  }
};


// ---------------------------------------------------------------- selection

double Selection::score(const json& r, const std::string& select) {
  return select == "source_val" ? r["source_val_acc"].get<double>()
         : select == "oracle"   ? r["target_test_acc"].get<double>()
                                : -r["target_entropy"].get<double>();
}

bool Selection::update(const json& r, int64_t step, const std::string& select) {
  const double s = score(r, select);
  const bool improved = s > best_score;  // strictly: on a tie the earlier evaluation stays selected
  if (improved) {
    best_score = s;
    best_step = step;
    best_eval = r;
    evals_since_best = 0;
  } else {
    evals_since_best++;
  }
  const double tacc = r["target_test_acc"].get<double>();
  if (tacc > oracle_best) {
    oracle_best = tacc;
    oracle_step = step;
  }
  last_eval = r;
  return improved;
}

void Selection::reset_best() {
  best_score = -std::numeric_limits<double>::infinity();
  best_step = -1;
  evals_since_best = 0;
}

// ---------------------------------------------------------------- the steps of fit()

Trainer::Trainer(Experiment& exp, const core::Config& cfg, const core::RunDir& run, Communicator* comm)
    : s_(std::make_unique<State>(exp, cfg, run, comm)) {}
Trainer::~Trainer() = default;

const Selection& Trainer::selection() const { return s_->sel; }
int Trainer::phase() const { return s_->phase; }
torch::optim::Optimizer& Trainer::optimizer() {
  core::check(s_->opt != nullptr, "Trainer::optimizer() before setup()");
  return *s_->opt;
}

// train.channels_last (CUDA): the 4-d parameters (convolution weights) in channels_last layout; the
// input batches follow in the step, and cuDNN then keeps activations NHWC throughout
static void params_to_channels_last(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.parameters(true))
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
}

static std::string fmt(double v, int prec = 2) { return core::fixed(v, prec, std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"); }

int64_t Trainer::setup(bool resume) {
  auto& s = *s_;
  auto& e = s.e;
  const auto& to = s.to;
  s.uses_target = e.method->uses_target();
  const bool dist = s.comm != nullptr;
  if (dist)  // each rank takes its strided shard of the common epoch order (data::shard_order)
    for (auto* lo : {&e.source_loader, &e.target_loader}) {
      lo->shard_rank = s.comm->rank();
      lo->shard_count = s.world;
      lo->shard_even = true;
    }
  s.src_it = std::make_unique<data::ForeverIterator>(e.source, e.source_loader);
  if (s.uses_target) s.tgt_it = std::make_unique<data::ForeverIterator>(e.target, e.target_loader);

  int64_t step = 0;
  json resumed_meta;
  bool has_phase1 = to.phase1_steps > 0;
  if (resume) {
    core::check(fs::exists(s.ckpt("latest.pt")), "cannot resume '", s.run.path(), "': no latest.pt checkpoint");
    // peek at the phase to build the matching optimizer, then load everything
    CheckpointParts peek;
    resumed_meta = load_checkpoint(s.ckpt("latest.pt"), peek, false);
    s.phase = resumed_meta.value("phase", 2);
    const int saved_world = resumed_meta.value("world_size", 1);
    core::check_usage(saved_world == s.world, "run '", s.run.path(), "' was trained by ", saved_world,
                      " process(es) and resumes only with as many (data shards, batches and RNG states are per "
                      "rank); this is ", s.world, ": ",
                      saved_world > 1 ? core::str("shiftlab launch -n ", saved_world, " -- train --resume DIR, or ",
                                                  saved_world, " ranks under torchrun/srun")
                                      : std::string("shiftlab train --resume DIR, in one process"));
  } else {
    s.phase = has_phase1 ? 1 : 2;
  }
  s.mo = models::model_options_from(s.cfg);
  if (to.channels_last && e.device.is_cuda()) params_to_channels_last(*e.model);
  if (s.phase == 1) e.model->apply_freeze("backbone", s.mo.bn);
  s.build_optimizer(s.phase == 1);
  if (resume) {
    CheckpointParts p{e.model.ptr().get(), e.method.get(), s.opt.get(), {}};
    s.base_reference(p);
    p.rank = dist ? s.comm->rank() : -1;  // every rank reads the file (a shared file system)
    resumed_meta = load_checkpoint(s.ckpt("latest.pt"), p, true);
    s.restore_meta(resumed_meta);
    step = resumed_meta.at("step").get<int64_t>();
    core::log_info("resumed '", s.run.path(), "' at step ", step, " (phase ", s.phase, ")");
    if (s.main) s.metrics.resume_from(step);
  }
  // identical starting point on every rank: rank 0's parameters and buffers
  if (dist) s.comm->broadcast(s.state_tensors(), "initial parameter broadcast");

  s.summary = json::object();
  s.summary["status"] = "running";
  s.summary["command"] = "train";
  if (dist) s.summary["world_size"] = s.world;
  if (s.main) s.run.write_summary(s.summary);
  s.t0 = std::chrono::steady_clock::now();
  return step;
}

void Trainer::check_stop(int64_t step) {
  auto& s = *s_;
  const bool dist = s.comm != nullptr;
  // distributed: the ranks stop together, at the step after the one whose all-reduce carried
  // the request (a signal reaches the ranks at different moments)
  if (dist ? s.stop_all : core::stop_requested()) {
    s.save("latest.pt", step, true);
    s.summary["status"] = "interrupted";
    s.summary["step"] = step;
    if (s.main) {
      s.metrics.flush();
      s.run.write_summary(s.summary);
    }
    if (dist) s.comm->barrier("barrier after the interrupt checkpoint");  // rank 0 has written it
    throw core::Error(core::str("interrupted by signal ", core::stop_signal(), " at step ", step, "; resume with: ",
                                dist ? core::str("shiftlab launch -n ", s.world, " -- train --resume ")
                                     : std::string("shiftlab train --resume "),
                                s.run.path()));
  }
  if (const auto& hook = core::test_hooks();
      step == hook.fail_at_step && (hook.fail_rank < 0 || (dist && s.comm->rank() == hook.fail_rank)))
    ::kill(::getpid(), SIGKILL);
}

StepResult Trainer::train_step(int64_t step, int64_t total) {
  auto& s = *s_;
  auto& e = s.e;
  const auto& to = s.to;
  const bool dist = s.comm != nullptr;
  core::check(s.opt != nullptr, "Trainer::train_step() before setup()");
  double f = lr_factor(s.so, step, total);
  auto& groups = s.opt->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(s.base_lrs[i] * f);

  auto bs = s.src_it->next();
  auto xs = bs.images.to(e.device, true);
  const bool channels_last = to.channels_last && e.device.is_cuda();
  if (channels_last && xs.dim() == 4) xs = xs.contiguous(at::MemoryFormat::ChannelsLast);
  auto ys = bs.labels.to(e.device, true);
  losses::StepOutputs out;
  out.labels_s = ys;
  out.progress = static_cast<double>(step) / std::max<int64_t>(1, total);
  out.step = step;
  int64_t ns = xs.size(0), nt = 0;
  {
    AutocastGuard ag(e.device, to.amp);
    if (s.uses_target) {
      auto bt = s.tgt_it->next();
      auto xt = bt.images.to(e.device, true);
      if (channels_last && xt.dim() == 4) xt = xt.contiguous(at::MemoryFormat::ChannelsLast);
      nt = xt.size(0);
      if (to.together) {
        auto o = e.model->forward(torch::cat({xs, xt}), e.method_taps);
        out.f_s = o.features.narrow(0, 0, ns);
        out.f_t = o.features.narrow(0, ns, nt);
        out.logits_s = o.logits.narrow(0, 0, ns);
        out.logits_t = o.logits.narrow(0, ns, nt);
        for (auto& [k, v] : o.taps) {
          out.taps_s[k] = v.narrow(0, 0, ns);
          out.taps_t[k] = v.narrow(0, ns, nt);
        }
      } else {
        auto os = e.model->forward(xs, e.method_taps);
        auto ot = e.model->forward(xt, e.method_taps);
        out.f_s = os.features;
        out.logits_s = os.logits;
        out.taps_s = os.taps;
        out.f_t = ot.features;
        out.logits_t = ot.logits;
        out.taps_t = ot.taps;
      }
    } else {
      auto o = e.model->forward(xs, e.method_taps);
      out.f_s = o.features;
      out.logits_s = o.logits;
      out.taps_s = o.taps;
    }
  }
  if (to.amp != "none") {
    out.f_s = out.f_s.to(torch::kFloat);
    out.logits_s = out.logits_s.to(torch::kFloat);
    if (out.f_t.defined()) out.f_t = out.f_t.to(torch::kFloat), out.logits_t = out.logits_t.to(torch::kFloat);
  }
  auto ce = torch::nn::functional::cross_entropy(
      out.logits_s, ys, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(to.label_smoothing));
  auto terms = e.method->loss(out);
  auto loss = terms.total.defined() ? ce + terms.total : ce;
  // NaN guard: on CPU every step (cheap); on CUDA at logging steps only (no per-step sync)
  bool check_now = !e.device.is_cuda() || (step + 1) % to.log_every == 0;
  auto nan_guard = [&](const torch::Tensor& loss_v, const torch::Tensor& ce_v,
                       const std::vector<std::pair<std::string, torch::Tensor>>& terms_v) {
    if (std::isfinite(loss_v.item<double>())) return;
    std::string culprit = "ce";
    if (std::isfinite(ce_v.item<double>()))
      for (auto& [n, t] : terms_v)
        if (!std::isfinite(t.item<double>())) {
          culprit = n;
          break;
        }
    s.summary["status"] = "failed";
    s.summary["error"] = core::str("non-finite loss at step ", step, " (term '", culprit, "')");
    if (s.main) {
      s.metrics.flush();
      s.run.write_summary(s.summary);
    }
    throw core::Error(core::str("non-finite loss at step ", step, ": term '", culprit, "' = ",
                                culprit == "ce" ? ce_v.item<double>() : loss_v.item<double>(),
                                dist ? " (mean over ranks)" : "",
                                fs::exists(s.ckpt("latest.pt")) || fs::exists(s.ckpt("best.pt"))
                                    ? "; the last good checkpoint stays in " +
                                          s.ckpt(fs::exists(s.ckpt("latest.pt")) ? "latest.pt" : "best.pt")
                                    : core::str("; no checkpoint was written before it (run ", s.run.path(),
                                                "): check the input data for NaN / inf and lower optim.lr")));
  };
  if (!dist && check_now) nan_guard(loss, ce, terms.terms);
  s.opt->zero_grad();
  loss.backward();
  if (dist) {
    s.reducer->finish(core::str("gradient all-reduce at step ", step));
    // the loss terms averaged over ranks (logging, NaN guard) and the stop request, in one
    // all-reduce; a NaN on any rank makes every rank stop here, before the update
    std::vector<torch::Tensor> parts{loss.detach().reshape({1}), ce.detach().reshape({1})};
    for (auto& [n, t] : terms.terms) parts.push_back(t.detach().reshape({1}).to(loss.scalar_type()));
    auto pack = torch::cat(parts).to(torch::kDouble) / static_cast<double>(s.world);
    pack = torch::cat({pack, torch::full({1}, core::stop_requested() ? 1.0 : 0.0, pack.options())});
    s.comm->allreduce_sum(pack, core::str("loss all-reduce at step ", step));
    loss = pack[0];
    ce = pack[1];
    for (size_t i = 0; i < terms.terms.size(); ++i) terms.terms[i].second = pack[static_cast<int64_t>(2 + i)];
    if (check_now) {
      s.stop_all = pack[static_cast<int64_t>(2 + terms.terms.size())].item<double>() > 0;
      nan_guard(loss, ce, terms.terms);
    }
  }
  if (s.oo.grad_clip > 0) torch::nn::utils::clip_grad_norm_(s.trainable, s.oo.grad_clip);
  s.opt->step();

  // accumulate terms (device tensors; no host sync until logging)
  auto add = [&](const std::string& k, const torch::Tensor& v) {
    auto d = v.detach().to(torch::kDouble);
    auto it = s.acc.find(k);
    if (it == s.acc.end()) s.acc[k] = d.clone();
    else it->second += d;
  };
  add("loss", loss);
  add("ce", ce);
  for (auto& [n, t] : terms.terms) add(n, t);
  s.acc_n++;
  s.images += static_cast<double>(ns + nt) * s.world;  // over all ranks

  // the values for the caller: device tensors, read on CPU only (no per-step sync on CUDA)
  StepResult r;
  r.source_images = ns;
  r.target_images = nt;
  if (!e.device.is_cuda()) {
    r.loss = loss.item<double>();
    r.ce = ce.item<double>();
    for (auto& [n, t] : terms.terms) r.terms.emplace_back(n, t.item<double>());
  }
  return r;
}

void Trainer::log_progress(int64_t done) {
  auto& s = *s_;
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.t0).count();
  s.train_seconds += el;
  json row;
  row["step"] = done;
  row["phase"] = s.phase;
  row["lr"] = s.opt->param_groups().back().options().get_lr();
  for (auto& [k, v] : s.acc) row[k] = v.item<double>() / std::max<int64_t>(1, s.acc_n);
  row["images_per_s"] = el > 0 ? s.images / el : 0.0;
  row["rss_mib"] = core::resident_mib();  // host memory: a leak shows as growth across rows
  if (s.main) s.metrics.log(row);
  if (s.progress) s.progress->update(done, core::str("loss ", fmt(row.value("loss", std::nan("")), 4)));
  core::log_to_file_only(row.dump());
  s.acc.clear();
  s.acc_n = 0;
  s.images = 0;
  s.t0 = std::chrono::steady_clock::now();
}

json Trainer::evaluate_and_select(int64_t done) {
  auto& s = *s_;
  auto& e = s.e;
  const auto& to = s.to;
  auto r = s.evaluate_now(done);
  const bool improved = s.sel.update(r, done, to.select);
  json row = r;
  row.erase("target_test_per_class");
  row.erase("target_test_confusion");
  row["selected"] = improved;
  if (s.main) {
    s.metrics.log(row);
    s.metrics.flush();
  }
  core::log_info(s.phase == 1 ? "[phase 1] " : "", "step ", done, ": source-val ",
                 fmt(r["source_val_acc"].get<double>()), " % (", r.value("source_val_n", int64_t{0}),
                 " images), target-test ", fmt(r["target_test_acc"].get<double>()), " % (",
                 r.value("target_test_n", int64_t{0}), " images",
                 e.protocol == "transductive" ? ", TRANSDUCTIVE: the target training images" : "", ")",
                 improved ? " (best so far by " + to.select + ")" : "");
  e.model->train(true);
  e.method->train(true);
  r["selected"] = improved;
  return r;
}

void Trainer::checkpoint(int64_t done, bool selected) {
  auto& s = *s_;
  const auto& to = s.to;
  if (selected) s.save(s.phase == 1 ? "best_phase1.pt" : "best.pt", done, false);
  s.save("latest.pt", done, true);
  if (to.keep <= 0) return;
  s.save(core::str("step-", done, ".pt"), done, false);
  if (!s.main) return;
  // drop the oldest beyond keep
  std::vector<std::pair<int64_t, fs::path>> steps;
  for (auto& de : fs::directory_iterator(s.run.path())) {
    auto n = de.path().filename().string();
    // step-<N>.pt only (a stray step-x.pt or step-1.pt.tmp.* is not ours to remove)
    if (n.rfind("step-", 0) != 0 || n.size() <= 8 || n.compare(n.size() - 3, 3, ".pt") != 0) continue;
    auto digits = n.substr(5, n.size() - 8);
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    steps.emplace_back(std::stoll(digits), de.path());
  }
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + static_cast<size_t>(to.keep) < steps.size(); ++i) fs::remove(steps[i].second);
}

void Trainer::begin_phase2() {
  auto& s = *s_;
  auto& e = s.e;
  core::check(s.phase == 1, "Trainer::begin_phase2() outside phase 1");
  // reload the best head-only checkpoint, unfreeze as model.freeze says, new optimizer
  core::log_info("phase 1 done (best at step ", s.sel.best_step, "); phase 2 with model.freeze = ", s.mo.freeze);
  if (s.main) {
    CheckpointParts p{e.model.ptr().get(), e.method.get(), nullptr, {}};
    s.base_reference(p);
    load_checkpoint(s.ckpt("best_phase1.pt"), p, false);
  }
  if (s.comm) s.comm->broadcast(s.state_tensors(), "phase-2 parameter broadcast");  // rank 0 read the file
  e.model->apply_freeze(s.mo.freeze, s.mo.bn);
  s.phase = 2;
  s.sel.reset_best();
  s.build_optimizer(false);
}

json Trainer::finish(int64_t steps) {
  auto& s = *s_;
  auto& e = s.e;
  const auto& to = s.to;
  if (s.main) s.metrics.flush();
  auto& summary = s.summary;
  summary["status"] = "completed";
  summary["steps"] = steps;
  summary["select"] = to.select;
  summary["oracle_selected"] = to.select == "oracle";
  auto strip = [](json r) {
    r.erase("target_test_confusion");
    return r;
  };
  summary["selected"] = strip(s.sel.best_eval);
  summary["selected_note"] = to.select == "oracle"
                                 ? "ORACLE: the checkpoint was selected with target-test labels; not a fair DA result"
                                 : "selected without target labels (" + to.select + ")";
  summary["oracle"] = {{"step", s.sel.oracle_step},
                       {"target_test_acc", std::isfinite(s.sel.oracle_best) ? json(s.sel.oracle_best) : json(nullptr)}};
  summary["last"] = strip(s.sel.last_eval);
  summary["method"] = e.method->describe();
  summary["num_classes"] = e.num_classes;
  summary["source"] = e.source->describe();
  summary["target"] = e.target->describe();
  // which images each reported number was computed on (data/roles.h)
  summary["protocol"] = e.protocol;
  summary["data"] = e.roles;
  summary["evaluated_on"] = {
      {"source_val_acc", e.roles.contains("roles") ? e.roles["roles"].value("source/val", json::object()) : json()},
      {"target_test_acc", e.roles.contains("roles") ? e.roles["roles"].value("target/test", json::object()) : json()}};
  const int64_t shared = e.roles.contains("roles") ? e.roles["roles"]["target/test"].value("overlap_target_train", int64_t{0})
                                                    : int64_t{0};
  summary["protocol_note"] =
      e.protocol == "transductive"
          ? "TRANSDUCTIVE: target-test accuracy is measured on the (unlabelled during training) target training "
            "images, with their labels"
      : shared == 0 ? "held out: target-test shares no image with target/train"
                    : core::str("target-test shares ", shared,
                                " images with target/train, which this method never reads (no adaptation on them)");
  summary["train_seconds"] = s.train_seconds;
  summary["eval_batch_size"] = to.eval_batch_size;  // resolved (eval.batch_size = 0 is auto)
  summary["peak_rss_mib"] = core::peak_resident_mib();
  summary["parameters"] = s.params;  // of the last phase: model total and trainable, adapters, method
  if (!e.weights_sha256.empty()) summary["weights_sha256"] = e.weights_sha256;
  if (s.main) s.run.write_summary(summary);
  return summary;
}

// ---------------------------------------------------------------- fit

json Trainer::fit(bool resume) {
  auto& s = *s_;
  const auto& to = s.to;
  int64_t step = setup(resume);
  while (true) {
    const int64_t total = s.phase == 1 ? to.phase1_steps : to.steps;
    s.e.model->train(true);
    s.e.method->train(true);
    core::Progress progress(s.phase == 1 ? "phase 1" : "train", total);
    s.progress = &progress;
    struct Detach {  // the progress bar dies with this scope
      State& st;
      ~Detach() { st.progress = nullptr; }
    } detach{s};
    s.t0 = std::chrono::steady_clock::now();
    for (; step < total; ++step) {
      check_stop(step);
      train_step(step, total);
      if ((step + 1) % to.log_every == 0 || step + 1 == total) log_progress(step + 1);
      const bool eval_now = (to.eval_every > 0 && (step + 1) % to.eval_every == 0) || step + 1 == total;
      if (!eval_now) continue;
      auto ev = evaluate_and_select(step + 1);
      checkpoint(step + 1, ev["selected"].get<bool>());
      if (to.early_stop > 0 && s.sel.evals_since_best >= to.early_stop) {
        core::log_info("early stop: ", s.sel.evals_since_best, " evaluations without improvement");
        ++step;
        break;
      }
    }
    if (total == 0) checkpoint(0, evaluate_and_select(0)["selected"].get<bool>());
    progress.finish();
    if (s.phase != 1) break;
    begin_phase2();
    step = 0;
  }
  return finish(step);
}

}  // namespace shiftlab::train
