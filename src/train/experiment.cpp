#include "train/experiment.h"

#include "adapters/adapter.h"
#include "adapters/input_conv.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/datasets.h"
#include "data/options.h"
#include "data/roles.h"
#include "losses/methods.h"
#include "models/weights.h"

namespace shiftlab::train {

models::Classifier build_model(const core::Config& c, int64_t num_classes, std::string* weights_sha) {
  auto mo = models::model_options_from(c);
  auto backbone = models::make_backbone(mo.backbone);
  const auto weights = c.get_string("model.weights");
  if (!weights.empty()) {
    auto w = models::load_weights_file(weights);
    backbone->upgrade_state_dict(w);  // older published key names (DenseNet)
    // classification heads of the original model are never part of the backbone
    models::LoadReport report;
    try {
      report = models::load_state_dict(*backbone, w, c.get_bool("model.strict"), backbone->head_prefixes());
    } catch (const core::Error& e) {
      throw core::Error(core::str("weights '", weights, "' do not match the ", mo.backbone.name, " backbone: ", e.what()));
    }
    core::log_info("loaded weights '", weights, "': ", report.summary());
    if (weights_sha) *weights_sha = core::sha256_file(weights);
  }
  auto ic = adapters::input_conv_options_from(c);
  torch::nn::AnyModule front;
  // band adaptation from the backbone's native input (model.in_channels) when the data has another
  // band count (model.bands), or a learned mixer / band mapping is asked for
  if (ic.bands == 0) ic.bands = backbone->in_channels();
  if (ic.bands != backbone->in_channels() || ic.mode == "learned_1x1" || !ic.rgb_bands.empty())
    front = adapters::adapt_input_conv(*backbone, backbone->in_conv_name(), ic);
  // adapters (model.adapters) go in after the weights and the band adaptation, before freezing; their
  // own parameters keep training whatever model.freeze says (models/adapter_hook.h)
  auto ao = adapters::adapter_options_from(c);
  if (!ao.specs.empty()) core::log_info(adapters::apply_adapters(*backbone, ao).summary());
  models::Classifier model(backbone, mo.head, num_classes);
  if (!front.is_empty()) model->set_input_adapter(front);
  model->apply_freeze(mo.freeze, mo.bn);
  return model;
}

Experiment build_experiment(const core::Config& c, const torch::Device& device) {
  Experiment e;
  e.device = device;
  // the four roles (data/roles.h): held-out sets, class names matched, overlaps recorded
  const bool oracle = c.get_string("train.select") == "oracle";
  auto roles = data::make_roles(data::role_options_from(c), data::RoleMode::Train, oracle);
  e.source = roles.source_train;
  e.target = roles.target_train;
  e.source_val = roles.source_val;
  e.target_test = roles.target_test;
  e.protocol = roles.protocol;
  e.roles = roles.to_json();
  for (auto& info : roles.info) core::log_info(info.line());
  if (roles.protocol == "transductive")
    core::log_info("protocol: TRANSDUCTIVE — target-test accuracy is measured on the target training images");
  e.source_loader = data::loader_options_from(c, "data.source");
  e.target_loader = data::loader_options_from(c, "data.target");
  auto seed = static_cast<uint64_t>(c.get_int("run.seed"));
  // the loaders' own seeds (data.*.seed) combine with run.seed, so --run.seed=N changes everything
  e.source_loader.seed = e.source_loader.seed * 1000003 + seed * 2 + 1;
  e.target_loader.seed = e.target_loader.seed * 1000003 + seed * 2 + 2;
  e.source_loader.pin_memory = e.target_loader.pin_memory = device.is_cuda();

  for (auto* ds : {&e.source, &e.source_val}) core::check((*ds)->size() > 0, "dataset ", (*ds)->describe(), " is empty");
  core::check(e.target->size() > 0, "target dataset ", e.target->describe(), " is empty");
  e.num_classes = e.source->num_classes();
  core::check(e.num_classes > 1, "source dataset ", e.source->describe(), " has ", e.num_classes,
              " classes; a classifier needs at least 2");
  auto vk = e.source_val->num_classes();
  core::check(vk <= e.num_classes, "source-val labels reach class ", vk - 1, " but the source has ", e.num_classes,
              " classes: ", e.source_val->describe(), " (source: ", e.source->describe(), ")");
  // a target test set lacking some of the source's classes is fine; labels beyond them are not
  auto tk = e.target_test->num_classes();
  core::check(tk <= e.num_classes, "source and target disagree on the number of classes: ",
              e.source->describe(), " has ", e.num_classes, ", ", e.target_test->describe(), " has ", tk);

  e.model = build_model(c, e.num_classes, &e.weights_sha256);
  e.model->to(device);

  auto mo = losses::method_options_from(c);
  // a dry forward on two source images gives the feature and tap sizes the method needs
  std::vector<std::string> all_taps;
  {
    auto probe_method = losses::make_method(mo, 1, e.num_classes, {});
    all_taps = probe_method->taps();
  }
  std::map<std::string, int64_t> tap_dims;
  int64_t fdim = 0;
  {
    torch::NoGradGuard ng;
    bool was = e.model->is_training();
    e.model->eval();
    // images whose band count the model does not take fail here with a message naming both,
    // not deep inside the first convolution
    const int64_t want = e.model->input_channels();
    for (auto* ds : {&e.source, &e.target}) {
      const auto first = (*ds)->get(0, 0).image;
      core::check(first.dim() == 3 && first.size(0) == want, ds == &e.source ? "source" : "target", " images have ",
                  first.dim() == 3 ? first.size(0) : first.dim(), first.dim() == 3 ? " bands" : " dimensions",
                  " (first item of ", (*ds)->describe(), (*ds)->path(0).empty() ? "" : ": " + (*ds)->path(0),
                  ") but the model takes ", want, " (set model.in_channels, or model.bands to adapt the input conv)");
    }
    const size_t second = std::min<size_t>(1, e.source->size() - 1);
    auto x0 = e.source->get(0, 0).image, x1 = e.source->get(second, 0).image;
    core::check(x0.sizes() == x1.sizes(), "source images differ in size without a resize: '", e.source->path(0), "' is ",
                x0.sizes(), ", '", e.source->path(second), "' is ", x1.sizes(), " (", e.source->describe(),
                "); add resize(S) and center_crop(S) to data.source.transform");
    auto x = torch::stack({x0, x1}).to(device);
    auto out = e.model->forward(x, all_taps);
    fdim = out.features.size(1);
    for (auto& [k, v] : out.taps) tap_dims[k] = v.size(1);
    e.model->train(was);
  }
  e.method = losses::make_method(mo, fdim, e.num_classes, tap_dims);
  e.method->to(device);
  // target/test = target/train images is transductive only when the method reads them
  const bool target_used = e.method->uses_target() || e.method->adabn();
  e.roles["target_images_used"] = target_used;
  data::check_target_overlap(roles, target_used);
  e.method_taps = e.method->taps();
  return e;
}

}  // namespace shiftlab::train
