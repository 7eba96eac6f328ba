// Distributed data-parallel training (train/dist.h) on loopback with Gloo:
//   * the environment (torchrun / Slurm variables) and the data sharding, as units;
//   * two ranks with per-rank batch b end with the same parameters as one process with batch 2b,
//     for source-only and DANN (ViT-Tiny, DANN's BatchNorm discriminator under SyncBatchNorm;
//     ResNet-18 with SyncBatchNorm for one step), and without SyncBatchNorm they do not (the
//     comparison can fail);
//   * a rank that dies makes the other exit with an error at once, one that hangs at dist.timeout;
//   * `shiftlab launch` stops the other ranks when one fails and exits non-zero;
//   * `shiftlab extract` over 2 ranks writes the one-process cache;
//   * exact resume of a 2-rank run (per-rank RNG states, LeNet's dropout), and resuming it with
//     another world size is refused.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "core/fs.h"
#include "data/datasets.h"
#include "features/cache.h"
#include "data/loader.h"
#include "support/testing.h"
#include "train/dist.h"
#include "train/evaluate.h"

using namespace shiftlab;
namespace fs = std::filesystem;
using testutil::run_cli;

namespace {

// ---------------------------------------------------------------- helpers

// A free loopback port: the kernel's pick for port 0.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::vector<std::string> train_args(const std::string& runs, const std::string& method, int batch,
                                    const std::string& backbone = "resnet18") {
  auto root = testutil::prepared_digits_root();
  auto b = std::to_string(batch);
  return {"train",
          "--run.root=" + runs,
          "--run.name=t",
          "--run.threads=1",
          "--run.log_level=warn",
          "--data.source.dataset=uci-digits",
          "--data.source.root=" + root,
          "--data.source.transform=resize(28), normalize(0.5, 0.5)",
          "--data.source.batch_size=" + b,
          "--data.source.workers=1",
          "--data.target.dataset=uci-digits",
          "--data.target.root=" + root,
          "--data.target.split=val",
          "--data.target.transform=resize(28), normalize(0.5, 0.5)",
          "--data.target.batch_size=" + b,
          "--data.target.workers=1",
          "--model.backbone=" + backbone,
          "--model.in_channels=1",
          "--dann.hidden=32",
          "--method=" + method,
          "--train.steps=3",
          "--train.eval_every=0",
          "--train.log_every=1",
          "--eval.workers=1",
          "--eval.batch_size=512",
          "--optim.lr=0.01",
          "--dist.timeout=60"};
}

// Every tensor of a checkpoint's model and method sections, by dotted name.
void flatten(torch::serialize::InputArchive& ar, const std::string& prefix, std::map<std::string, torch::Tensor>& out) {
  for (auto& k : ar.keys()) {
    torch::Tensor t;
    torch::serialize::InputArchive sub;
    if (ar.try_read(k, sub)) flatten(sub, prefix + k + ".", out);
    else if (ar.try_read(k, t) || ar.try_read(k, t, /*is_buffer=*/true)) out[prefix + k] = t;
  }
}
std::map<std::string, torch::Tensor> checkpoint_tensors(const std::string& path) {
  torch::serialize::InputArchive ar;
  ar.load_from(path);
  std::map<std::string, torch::Tensor> out;
  for (auto section : {"model", "method"}) {
    torch::serialize::InputArchive sub;
    if (ar.try_read(section, sub)) flatten(sub, std::string(section) + ".", out);
  }
  return out;
}

// Largest |a - b| over the floating-point tensors both hold (and the name where it is).
std::pair<double, std::string> max_diff(const std::map<std::string, torch::Tensor>& a,
                                        const std::map<std::string, torch::Tensor>& b) {
  double worst = 0;
  std::string where;
  EXPECT_EQ(a.size(), b.size());
  for (auto& [k, t] : a) {
    auto it = b.find(k);
    if (it == b.end()) {
      ADD_FAILURE() << "missing " << k;
      continue;
    }
    if (!t.is_floating_point()) continue;
    double d = (t - it->second).abs().max().item<double>();
    if (d > worst) worst = d, where = k;
  }
  return {worst, where};
}

// A child process running the binary with extra environment variables; stdout/stderr to files.
struct Proc {
  pid_t pid = -1;
  std::string out, err;
};
Proc spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env, const std::string& dir,
           const std::string& tag) {
  Proc p;
  auto base = dir + "/" + tag;
  p.out = base + ".out";
  p.err = base + ".err";
  p.pid = ::fork();
  if (p.pid == 0) {
    int o = ::open(p.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(p.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<std::string> copy{SHIFTLAB_BIN};
    copy.insert(copy.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(SHIFTLAB_BIN, argv.data());
    ::_exit(127);
  }
  return p;
}
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::vector<std::string> launch(int n, std::vector<std::string> args) {
  std::vector<std::string> l{"launch", "-n", std::to_string(n), "--"};
  l.insert(l.end(), args.begin(), args.end());
  return l;
}

}  // namespace

// ---------------------------------------------------------------- units

TEST(DistEnv, TorchrunSlurmAndNone) {
  std::map<std::string, std::string> vars;
  auto lookup = [&](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  EXPECT_FALSE(train::dist_env_from("auto", lookup).active());
  vars = {{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
          {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "1234"}};
  auto e = train::dist_env_from("auto", lookup);
  EXPECT_TRUE(e.active());
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "10.1.2.3");
  EXPECT_EQ(e.master_port, 1234);
  EXPECT_EQ(e.source, "env");
  EXPECT_FALSE(train::dist_env_from("none", lookup).active());
  // Slurm inside an srun step (its variables only), torchrun's win when both are there
  vars = {{"SLURM_PROCID", "5"}, {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
          {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"}, {"SLURM_LAUNCH_NODE_IPADDR", "10.0.0.7"}, {"SLURM_JOB_ID", "12345"}};
  e = train::dist_env_from("auto", lookup);
  EXPECT_EQ(e.source, "slurm");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "10.0.0.7");
  EXPECT_EQ(e.master_port, 20000 + 12345 % 20000);
  vars["MASTER_ADDR"] = "node01";
  EXPECT_EQ(train::dist_env_from("auto", lookup).master_addr, "node01");
  // an sbatch script (no srun step) is one process unless dist.env = slurm says otherwise
  vars.erase("SLURM_STEP_NUM_TASKS");
  EXPECT_FALSE(train::dist_env_from("auto", lookup).active());
  EXPECT_TRUE(train::dist_env_from("slurm", lookup).active());
  // malformed or inconsistent values are usage errors naming the variable
  vars = {{"RANK", "x"}, {"WORLD_SIZE", "2"}};
  EXPECT_THROW(train::dist_env_from("auto", lookup), core::UsageError);
  vars = {{"RANK", "2"}, {"WORLD_SIZE", "2"}};
  EXPECT_THROW(train::dist_env_from("auto", lookup), core::UsageError);
  vars = {{"RANK", "0"}};
  try {
    train::dist_env_from("auto", lookup);
    ADD_FAILURE() << "RANK without WORLD_SIZE accepted";
  } catch (const core::UsageError& err) {
    EXPECT_NE(std::string(err.what()).find("WORLD_SIZE"), std::string::npos) << err.what();
  }
  EXPECT_NE(train::dist_backends_compiled().find("gloo"), std::string::npos) << "built without Gloo";
}

TEST(DistShard, EveryIndexOnceAndTheSameGlobalBatches) {
  for (int64_t n : {0, 1, 7, 10, 12, 101}) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = (i * 37 + 11) % std::max<int64_t>(n, 1);
    for (int64_t w : {1, 2, 3, 4}) {
      data::LoaderOptions o;
      o.shard_count = w;
      // uneven shards (evaluation): every index exactly once, sizes within one
      o.shard_even = false;
      std::multiset<int64_t> seen;
      size_t lo = SIZE_MAX, hi = 0;
      for (int64_t r = 0; r < w; ++r) {
        o.shard_rank = r;
        auto s = data::shard_order(order, o);
        seen.insert(s.begin(), s.end());
        lo = std::min(lo, s.size());
        hi = std::max(hi, s.size());
      }
      EXPECT_EQ(seen, std::multiset<int64_t>(order.begin(), order.end())) << n << " " << w;
      EXPECT_LE(hi - lo, 1u);
      // even shards with drop_last: disjoint, equal sizes, only the last n mod w dropped
      o.shard_even = true;
      o.drop_last = true;
      seen.clear();
      for (int64_t r = 0; r < w; ++r) {
        o.shard_rank = r;
        auto s = data::shard_order(order, o);
        EXPECT_EQ(static_cast<int64_t>(s.size()), n / w);
        seen.insert(s.begin(), s.end());
      }
      EXPECT_EQ(seen, std::multiset<int64_t>(order.begin(), order.begin() + n / w * w));
      // even shards without drop_last: padded by wrapping, every index at least once
      o.drop_last = false;
      seen.clear();
      for (int64_t r = 0; r < w; ++r) {
        o.shard_rank = r;
        auto s = data::shard_order(order, o);
        EXPECT_EQ(static_cast<int64_t>(s.size()), (n + w - 1) / w);
        seen.insert(s.begin(), s.end());
      }
      for (auto v : order) EXPECT_GE(seen.count(v), 1u);
      // batch k of the w shards (batch size b) = batch k of the whole order with batch w*b
      const int64_t b = 2;
      o.drop_last = true;
      for (int64_t k = 0; (k + 1) * b * w <= n; ++k) {
        std::set<int64_t> shards, whole(order.begin() + k * b * w, order.begin() + (k + 1) * b * w);
        for (int64_t r = 0; r < w; ++r) {
          o.shard_rank = r;
          auto s = data::shard_order(order, o);
          shards.insert(s.begin() + k * b, s.begin() + (k + 1) * b);
        }
        EXPECT_EQ(shards, whole) << "n " << n << " w " << w << " batch " << k;
      }
    }
  }
}

TEST(DistShard, LoaderBatchesPerEpochMatchTheShard) {
  auto ds = data::make_domain([] {
    data::DomainOptions d;
    d.dataset = "uci-digits";
    d.root = testutil::prepared_digits_root();
    d.split = "val";
    d.transform = "resize(28)";
    return d;
  }());
  const int64_t n = static_cast<int64_t>(ds->size());
  for (bool even : {true, false}) {
    int64_t items = 0;
    std::set<int64_t> seen;
    for (int64_t r = 0; r < 3; ++r) {
      data::LoaderOptions o;
      o.batch_size = 16;
      o.workers = 1;
      o.drop_last = false;
      o.shard_rank = r;
      o.shard_count = 3;
      o.shard_even = even;
      data::Loader l(ds, o);
      l.start_epoch(0);
      data::Batch b;
      int64_t batches = 0;
      while (l.next(b)) {
        ++batches;
        items += b.indices.size(0);
        auto a = b.indices.accessor<int64_t, 1>();
        for (int64_t i = 0; i < b.indices.size(0); ++i) seen.insert(a[i]);
      }
      EXPECT_EQ(batches, l.batches_per_epoch());
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
    EXPECT_EQ(items, even ? (n + 2) / 3 * 3 : n);
  }
}

TEST(DistEval, ShardCountsCombine) {
  torch::manual_seed(0);
  auto logits = torch::randn({11, 3});
  auto labels = torch::tensor({0, 1, 2, 0, 1, 2, 0, 1, 2, -1, 1}, torch::kLong);
  auto whole = train::summarize(logits, labels, 3);
  std::vector<std::vector<int64_t>> conf(3, std::vector<int64_t>(3, 0));
  double ent = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < 2; ++r) {
    auto idx = torch::arange(r, 11, 2);
    auto part = train::summarize(logits.index_select(0, idx), labels.index_select(0, idx), 3);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) conf[i][j] += part.confusion[i][j];
    ent += part.entropy * part.n;
    n += part.n;
  }
  auto merged = train::result_from_counts(conf, n, ent);
  EXPECT_EQ(merged.confusion, whole.confusion);
  EXPECT_DOUBLE_EQ(merged.accuracy, whole.accuracy);
  EXPECT_DOUBLE_EQ(merged.mean_class_accuracy, whole.mean_class_accuracy);
  EXPECT_NEAR(merged.entropy, whole.entropy, 1e-6);
  EXPECT_EQ(merged.n_labelled, 10);
}

// ---------------------------------------------------------------- end to end

// Two ranks with per-rank batch 4 vs one process with batch 8 (the same global batches through
// the strided shards, gradients averaged over ranks, SyncBatchNorm statistics over both ranks'
// batches). ViT-Tiny on 32 px (LayerNorm, no dropout) keeps float noise small over several steps;
// a ResNet-18 on 28 px normalises 1×1 maps of 8 images in layer4, which amplifies rounding so much
// that one process differs from itself with another thread count after 3 steps (1e-3), so the
// ResNet check (SyncBatchNorm in every conv block) is one step.
struct Pair {
  std::string one, two;  // run directories: one process, two ranks
};
static Pair run_pair(const std::string& tag, const std::string& method, const std::vector<std::string>& extra,
                     bool sync_bn = true) {
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  auto one_dir = testutil::fresh_dir("dist_eq_one_" + tag);
  auto one = run_cli(with(train_args(one_dir, method, 8)));
  EXPECT_EQ(one.exit_code, 0) << one.err;
  auto two_dir = testutil::fresh_dir("dist_eq_two_" + tag);
  auto two_args = with(train_args(two_dir, method, 4));
  two_args.push_back(sync_bn ? "--dist.sync_bn=true" : "--dist.sync_bn=false");
  two_args.push_back("--dist.bucket_mb=1");  // several buckets, launched from hooks during backward
  auto two = run_cli(launch(2, two_args));
  EXPECT_EQ(two.exit_code, 0) << two.err;
  if (one.exit_code || two.exit_code) return {};
  return {testutil::only_run(one_dir), testutil::only_run(two_dir)};
}

static const std::vector<std::string> kVit{"--model.backbone=vit_tiny_patch16_224", "--model.image_size=32",
                                           "--data.source.transform=resize(32), normalize(0.5, 0.5)",
                                           "--data.target.transform=resize(32), normalize(0.5, 0.5)"};

static void expect_same_as_one_process(const std::string& method, const std::string& tag) {
  auto p = run_pair(tag, method, kVit);
  ASSERT_FALSE(p.one.empty());
  auto a = checkpoint_tensors(p.one + "/latest.pt"), b = checkpoint_tensors(p.two + "/latest.pt");
  ASSERT_GT(a.size(), 100u);  // ViT-Tiny's parameters (+ the discriminator's and its BN buffers)
  auto [d, where] = max_diff(a, b);
  EXPECT_LT(d, 1e-5) << method << ": largest difference at " << where;
  // the logged (rank-averaged) loss terms are the one-process ones, step by step
  auto ma = testutil::run_metrics(p.one), mb = testutil::run_metrics(p.two);
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i)
    for (auto& [k, v] : ma[i].items())
      if (v.is_number_float()) {
        EXPECT_NEAR(v.get<double>(), mb[i][k].get<double>(), 1e-4) << "row " << i << " " << k;
      }
  // the evaluation, sharded over both ranks, counts every test image once
  auto sa = testutil::run_summary(p.one), sb = testutil::run_summary(p.two);
  EXPECT_EQ(sa["last"]["target_test_per_class"], sb["last"]["target_test_per_class"]);
  EXPECT_EQ(sa["last"]["source_val_acc"], sb["last"]["source_val_acc"]);
  EXPECT_NEAR(sa["last"]["target_entropy"].get<double>(), sb["last"]["target_entropy"].get<double>(), 1e-4);
  EXPECT_EQ(sb["world_size"], 2);
  auto env = nlohmann::json::parse(core::read_file(p.two + "/env.json"));
  EXPECT_EQ(env["distributed"]["world_size"], 2);
  EXPECT_EQ(env["distributed"]["backend"], "gloo");

  if (method == "dann") {
    // without SyncBatchNorm each rank's discriminator normalises its own 8 features: the
    // parameters differ, so the comparison above can fail
    auto q = run_pair(tag + "_nosync", method, kVit, /*sync_bn=*/false);
    ASSERT_FALSE(q.two.empty());
    EXPECT_GT(max_diff(a, checkpoint_tensors(q.two + "/latest.pt")).first, 100 * 1e-5);
  }

  // a run of 2 ranks does not resume in 1 process
  auto res = run_cli({"train", "--resume", p.two, "--run.log_level=warn"});
  EXPECT_EQ(res.exit_code, 2) << res.err;
  EXPECT_NE(res.err.find("trained by 2 process(es)"), std::string::npos) << res.err;
}

TEST(DistTrain, TwoRanksEqualOneProcessWithTheGlobalBatchSourceOnly) {
  expect_same_as_one_process("source_only", "src");
}

TEST(DistTrain, TwoRanksEqualOneProcessWithTheGlobalBatchDann) { expect_same_as_one_process("dann", "dann"); }

TEST(DistTrain, SyncBatchNormInAResNetEqualsOneProcess) {
  auto p = run_pair("resnet", "dann", {"--train.steps=1"});
  ASSERT_FALSE(p.one.empty());
  auto a = checkpoint_tensors(p.one + "/latest.pt"), b = checkpoint_tensors(p.two + "/latest.pt");
  auto [d, where] = max_diff(a, b);  // parameters and BatchNorm running statistics
  EXPECT_LT(d, 1e-5) << "largest difference at " << where;
  auto q = run_pair("resnet_nosync", "dann", {"--train.steps=1"}, /*sync_bn=*/false);
  ASSERT_FALSE(q.two.empty());
  EXPECT_GT(max_diff(a, checkpoint_tensors(q.two + "/latest.pt")).first, 100 * 1e-5);
}

TEST(DistTrain, ARankThatDiesEndsTheOtherWithinTheTimeout) {
  auto runs = testutil::fresh_dir("dist_kill");
  const double timeout = 20;
  auto args = train_args(runs, "dann", 4, "lenet");
  args.push_back("--train.steps=50");
  args.push_back("--dist.timeout=" + std::to_string(static_cast<int>(timeout)));
  std::map<std::string, std::string> env{{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                                         {"MASTER_PORT", std::to_string(free_port())}};
  env["RANK"] = "0";
  auto logs = testutil::fresh_dir("dist_kill_logs");
  auto r0 = spawn(args, env, logs, "rank0");
  env["RANK"] = "1";
  env["SHIFTLAB_TEST_FAIL_AT_STEP"] = "3";  // SIGKILLs itself before step 3
  auto r1 = spawn(args, env, logs, "rank1");
  int st1 = 0, st0 = 0;
  ASSERT_EQ(::waitpid(r1.pid, &st1, 0), r1.pid);
  auto died = std::chrono::steady_clock::now();
  EXPECT_EQ(exit_code(st1), 128 + 9) << core::read_file(r1.err);
  ASSERT_EQ(::waitpid(r0.pid, &st0, 0), r0.pid);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - died).count();
  auto err0 = core::read_file(r0.err);
  EXPECT_EQ(exit_code(st0), 1) << err0;
  EXPECT_LT(waited, timeout + 5) << err0;
  EXPECT_NE(err0.find("distributed"), std::string::npos) << err0;
  EXPECT_NE(err0.find("rank 0 of 2"), std::string::npos) << err0;
  EXPECT_EQ(std::count(err0.begin(), err0.end(), '\n'), 1) << err0;
  EXPECT_EQ(testutil::run_summary(testutil::only_run(runs))["status"], "failed");
}

TEST(DistTrain, AHungRankEndsTheOtherAtTheTimeout) {
  auto runs = testutil::fresh_dir("dist_hang");
  const double timeout = 6;
  auto args = train_args(runs, "source_only", 4, "lenet");
  args.push_back("--train.steps=100000");
  args.push_back("--dist.timeout=" + std::to_string(static_cast<int>(timeout)));
  std::map<std::string, std::string> env{{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                                         {"MASTER_PORT", std::to_string(free_port())}};
  auto logs = testutil::fresh_dir("dist_hang_logs");
  env["RANK"] = "0";
  auto r0 = spawn(args, env, logs, "rank0");
  env["RANK"] = "1";
  auto r1 = spawn(args, env, logs, "rank1");
  // wait until training runs (rank 0 logged a step), then freeze rank 1 without killing it
  bool running = false;
  for (int i = 0; i < 600 && !running; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (fs::exists(runs + "/t"))
      for (auto& e : fs::directory_iterator(runs + "/t"))
        running = running || (fs::exists(e.path() / "metrics.jsonl") && fs::file_size(e.path() / "metrics.jsonl") > 0);
  }
  ASSERT_TRUE(running) << core::read_file(r0.err);
  ::kill(r1.pid, SIGSTOP);
  auto stopped = std::chrono::steady_clock::now();
  int st0 = 0;
  ASSERT_EQ(::waitpid(r0.pid, &st0, 0), r0.pid);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped).count();
  ::kill(r1.pid, SIGKILL);
  ::waitpid(r1.pid, nullptr, 0);
  auto err0 = core::read_file(r0.err);
  EXPECT_EQ(exit_code(st0), 1) << err0;
  EXPECT_LT(waited, timeout + 10) << err0;
  EXPECT_NE(err0.find("dist.timeout = 6 s"), std::string::npos) << err0;
}

TEST(DistLaunch, OneFailingRankStopsTheOthersAndFailsTheLaunch) {
  auto runs = testutil::fresh_dir("dist_launch_fail");
  auto args = train_args(runs, "source_only", 4, "lenet");
  args.push_back("--train.steps=200");
  testutil::CliOptions rank1_dies;
  rank1_dies.env = {{"SHIFTLAB_TEST_FAIL_AT_STEP", "2"}, {"SHIFTLAB_TEST_FAIL_RANK", "1"}};
  auto t0 = std::chrono::steady_clock::now();
  auto r = testutil::run_cli_with(launch(2, args), rank1_dies);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 128 + 9) << r.err;
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("signal 9"), std::string::npos) << r.err;
  EXPECT_LT(took, 60.0) << r.err;  // far less than 200 steps: rank 0 was stopped
  // usage errors of launch itself
  auto bad = run_cli({"launch", "-n", "2"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST(DistTrain, ResumeOfTwoRanksEqualsUninterrupted) {
  // LeNet's dropout draws from each rank's own RNG: exact resume needs every rank's RNG state
  auto base = [&](const std::string& runs) {
    auto a = train_args(runs, "dann", 4, "lenet");
    // log_every 3, checkpoints every 2: the checkpoint carries a partial loss average (acc)
    for (auto s : {"--train.steps=6", "--train.eval_every=2", "--train.log_every=3"}) a.push_back(s);
    return a;
  };
  auto runs_a = testutil::fresh_dir("dist_resume_a");
  testutil::CliOptions kill_at_3;
  kill_at_3.env["SHIFTLAB_TEST_FAIL_AT_STEP"] = "3";
  auto killed = testutil::run_cli_with(launch(2, base(runs_a)), kill_at_3);
  EXPECT_NE(killed.exit_code, 0) << killed.err;
  auto run = testutil::only_run(runs_a);
  auto resumed = run_cli(launch(2, {"train", "--resume", run, "--run.log_level=warn"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  auto runs_b = testutil::fresh_dir("dist_resume_b");
  auto straight = run_cli(launch(2, base(runs_b)));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  auto run_b = testutil::only_run(runs_b);
  EXPECT_EQ(testutil::run_metrics(run), testutil::run_metrics(run_b));
  EXPECT_EQ(testutil::run_summary(run)["last"], testutil::run_summary(run_b)["last"]);
  auto [d, where] = max_diff(checkpoint_tensors(run + "/latest.pt"), checkpoint_tensors(run_b + "/latest.pt"));
  EXPECT_EQ(d, 0.0) << where;
}

TEST(DistExtract, TwoRanksWriteTheSameCacheAsOneProcess) {
  auto dir = testutil::fresh_dir("dist_extract");
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"extract", out, "--run.threads=1", "--run.log_level=warn",
                                    "--model.backbone=lenet", "--model.in_channels=1",
                                    "--data.source.dataset=uci-digits", "--data.source.root=" + testutil::prepared_digits_root(),
                                    "--data.source.transform=resize(28), normalize(0.5, 0.5)",
                                    "--data.target.dataset=uci-digits", "--data.target.root=" + testutil::prepared_digits_root(),
                                    "--data.target.transform=resize(28), normalize(0.5, 0.5)",
                                    "--source_splits=train", "--target_splits=test,val", "--limit=101",  // odd: padding
                                    "--taps=conv1,pooled,logits", "--batch_size=16", "--workers=1"};
  };
  auto one = run_cli(args(dir + "/one.h5"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = run_cli(launch(2, args(dir + "/two.h5")));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_FALSE(fs::exists(dir + "/two.h5.rank1")) << "only rank 0 writes";
  auto blocks = features::list_cache(dir + "/two.h5");
  ASSERT_EQ(blocks.size(), 9u);  // 3 blocks x 3 taps
  for (auto& e : blocks) {
    EXPECT_TRUE(e.complete()) << e.domain << "/" << e.split << "/" << e.tap;
    EXPECT_EQ(e.rows, 101);
    auto a = features::read_block(dir + "/one.h5", e.domain, e.split, e.tap);
    auto b = features::read_block(dir + "/two.h5", e.domain, e.split, e.tap);
    ASSERT_EQ(a.X.rows(), b.X.rows());
    EXPECT_LT((a.X - b.X).cwiseAbs().maxCoeff(), 1e-5) << e.domain << "/" << e.split << "/" << e.tap;
    EXPECT_EQ(a.labels, b.labels);
  }
}
