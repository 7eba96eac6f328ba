// shiftlab extract: backbone (+ weights, or a run's checkpoint) x taps x domains/splits -> one
// HDF5 feature cache (schema in src/features/cache.h), resumable.
#include <iomanip>
#include <iostream>

#include "apps/command.h"
#include "apps/run_helpers.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/run_dir.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "features/extract.h"
#include "train/checkpoint.h"
#include "train/experiment.h"
#include "train/options.h"

namespace shiftlab::apps {

namespace {
struct ExtractRunFlags {
  std::string run;
  std::string checkpoint = "best";
};

const core::OptionTable<ExtractRunFlags>& extract_run_flag_table() {
  static const auto table = [] {
    using O = ExtractRunFlags;
    core::OptionTable<O> t("apps::ExtractRunFlags");
    t.field("run", &O::run, "extract with this run's configuration and checkpoint (else: model.* from the config)")
        .path()
        .command_flag();
    t.field("checkpoint", &O::checkpoint, "which checkpoint of --run").choices({"best", "latest"}).command_flag();
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema extract_schema() {
  auto s = train::experiment_schema();
  features::declare_extract_options(s);
  extract_run_flag_table().declare(s);
  return s;
}

static int run_extract(const core::Config& cli, const std::vector<std::string>&) {
  const std::string out = cli.positional.at(0);
  const auto eo = features::extract_options_from(cli);
  const auto flags = extract_run_flag_table().read(cli);
  std::unique_ptr<core::Config> holder;
  std::string ck, ck_sha;
  if (!flags.run.empty()) {
    core::check_usage(cli.config_files.empty(), "--run takes the run's own configuration; do not pass --config");
    auto run = core::RunDir::open(flags.run);
    holder = std::make_unique<core::Config>(
        config_of_run(run, cli, {"data.", "run.threads", "run.device", "run.log_level"}));
    ck = run.file(flags.checkpoint + ".pt");
  } else {
    holder = std::make_unique<core::Config>(cli);
  }
  const core::Config& cfg = *holder;
  torch::Device device(torch::kCPU);
  // under `shiftlab launch` / torchrun / srun: every rank computes its share, rank 0 writes
  auto comm = setup_runtime_maybe_distributed(cfg, core::runtime_options_from(cfg), device);
  features::ExtractRanks ranks;
  if (comm) {
    ranks.rank = comm->rank();
    ranks.count = comm->world_size();
    ranks.allgather = [&](const torch::Tensor& t) { return comm->allgather(t, "feature gather"); };
    ranks.allreduce_sum = [&](torch::Tensor& t) { comm->allreduce_sum(t, "extraction all-reduce"); };
  }
  auto inputs = features::extract_inputs(cfg, eo);
  int64_t num_classes = 0;
  for (auto& in : inputs) num_classes = std::max(num_classes, in.ds->num_classes());
  for (auto& in : inputs)
    if (in.domain == "source" && in.ds->num_classes() > 0) {
      num_classes = in.ds->num_classes();
      break;
    }
  std::string weights_sha;
  auto model = train::build_model(cfg, std::max<int64_t>(num_classes, 1), &weights_sha);
  model->to(device);
  if (!ck.empty()) {
    train::CheckpointParts parts{model.ptr().get(), nullptr, nullptr, {}};
    auto meta = train::load_checkpoint(ck, parts, false);
    ck_sha = core::sha256_file(ck);
    core::log_info("checkpoint ", ck, " (step ", meta.value("step", -1), ")");
  }
  auto prov = features::make_provenance(cfg, num_classes, weights_sha, ck, ck_sha);
  features::ExtractReport rep;
  try {
    rep = features::extract(*model, inputs, eo, prov, out, device, ranks);
  } catch (...) {
    if (comm) comm->abandon();
    throw;
  }
  if (comm && !comm->is_main()) {
    if (rep.interrupted) throw core::Error(core::str("interrupted by signal ", core::stop_signal()));
    return 0;
  }
  std::cout << std::fixed << std::setprecision(1);
  if (eo.forward_only) {
    std::cout << "forward only: " << rep.rows << " images in " << std::setprecision(2) << rep.seconds << " s, "
              << std::setprecision(1) << rep.images_per_s << " images/s, peak memory "
              << std::setprecision(0) << core::peak_resident_mib() << " MiB\n";
  } else {
    std::cout << (rep.interrupted ? "interrupted: " : "wrote ") << out << ": " << inputs.size() << " blocks x taps";
    for (auto& t : rep.taps) std::cout << " " << t.name << "[" << t.dim << "]";
    std::cout << " (" << eo.pool << ", " << eo.dtype << "), " << rep.rows << " rows in " << std::setprecision(2)
              << rep.seconds << " s (" << std::setprecision(1) << rep.images_per_s << " images/s; writing "
              << std::setprecision(2) << rep.write_seconds << " s; peak memory " << std::setprecision(0)
              << core::peak_resident_mib() << " MiB)";
    if (rep.rows_resumed > 0) std::cout << ", " << rep.rows_resumed << " rows resumed";
    std::cout << "\n";
  }
  if (rep.interrupted)
    throw core::Error(core::str("interrupted by signal ", core::stop_signal(), "; '", out,
                                "' is valid up to each block's rows_done; rerun the same command to continue"));
  return 0;
}

SHIFTLAB_COMMAND(
    "extract", "extract backbone features (any taps) of the source/target splits into an HDF5 cache", extract_schema,
    core::Positionals{"OUTPUT.h5", 1, 1},
    "Inputs: a config like train's (model.*, data.source.*, data.target.*), or --run DIR [--checkpoint best|latest].\n"
    "Default blocks: the run's four roles as train defines them (source/train, source/val, target/train,\n"
    "target/test; hold-outs, [data.source_val] / [data.target_test], data.protocol), eval transforms when\n"
    "set; --source_splits / --target_splits extract named splits instead. Eval mode, no gradients; spatial\n"
    "taps are pooled\n"
    "(--pool avg, or avgmax = [mean, max] concatenated).\n"
    "\n"
    "Schema (format shiftlab-features, version 1; plain arrays for h5py / pandas):\n"
    "  /                       attrs format, format_version, backbone, model, weights, weights_sha256,\n"
    "                          checkpoint, checkpoint_sha256, shiftlab_version, created, config (resolved INI),\n"
    "                          source_dataset, target_dataset, num_classes, and weights_trained_by when the\n"
    "                          weights file is a `shiftlab weights export` (the run that trained them)\n"
    "  /<domain>/<split>/      attrs dataset, transform, origin (how the rows were chosen), num_classes, rows\n"
    "    labels   int64 [N] (-1 = no label)    index int64 [N]    paths utf-8 strings [N]\n"
    "    <tap>/features  float32|float16 [N, D] chunked, uncompressed; attrs tap, pool, dtype, rows_done\n"
    "<domain> is source|target, <split> e.g. train|val|test, <tap> e.g. layer3|pooled|features|logits.\n"
    "\n"
    "Resume: an interrupted extraction (Ctrl-C, kill -9) leaves a valid file whose first rows_done rows are\n"
    "written; rerunning the same command continues there. A rerun whose backbone, model, weights or\n"
    "checkpoint SHA-256, transform, pool or dtype differ is refused (--overwrite replaces the file).\n"
    "New taps or splits are added to an existing file through a copy.\n"
    "\n"
    "Distributed: `shiftlab launch -n N -- extract ...` (or torchrun / srun) shards every block over the\n"
    "ranks; rank 0 gathers the features and writes the one file, identical to a one-process extraction.\n"
    "\n"
    "Examples (runs/digits/<time>-<id> stands for a run directory; train prints it):\n"
    "  shiftlab extract --config configs/digits/mnist_to_uci.ini --taps=conv1,conv2,pooled digits.h5\n"
    "  shiftlab extract --run runs/digits/<time>-<id> --checkpoint=best --dtype=float16 feats.h5\n"
    "  python3 -c \"import h5py; f = h5py.File('feats.h5'); print(f['target/test/pooled/features'][:])\"",
    run_extract);

}  // namespace shiftlab::apps
