// Adapters: parameter-efficient modules inserted into a pretrained backbone, which says where they
// may go (models::BackboneImpl::adapter_sites, adapter_blocks, supports_adapters), configured by one
// option, model.adapters, with a small grammar (`targets` in core/spec.h):
//
//   specs   := spec (";" spec)*                       e.g.
//   spec    := kind ["(" key=value ("," key=value)* ")"] "@" pattern ("," pattern)*
//     residual@layer3,layer4; bottleneck(dim=64)@layer4; lora(r=8,alpha=16,dropout=0)@blocks.*.attn.qkv
//   pattern := a module name of the backbone (as in its parameter names, without the tensor name);
//              "*" matches any characters except ".", "**" any characters (dots included).
// A pattern matching no module the kind can adapt is a UsageError naming the pattern and listing
// the candidate names. Kinds (registry "adapters", see `shiftlab list adapters`):
//   residual    Rebuffi et al. 2017/18: a 1×1 conv beside (mode=parallel, default) or after
//               (mode=series) each k×k (k > 1) conv of the matched stages / blocks (the backbone's
//               adapter_blocks()) / convs.
//   bottleneck  Houlsby et al. 2019: y + up(act(down(y))) after the matched adapter sites of the
//               backbone: CNN stages (1×1 convs over channels) or ViT blocks' attention and MLP
//               (Linears over the token dim); dim (64), act (relu | gelu).
//   lora        Hu et al. 2021: W x + (alpha/r)·B A dropout(x) on matched Linear / Conv2d modules
//               (a torchvision ViT attention's packed in_proj_weight is "<attention>.in_proj");
//               r (8), alpha (= r), dropout (0). merge_lora() folds it into W.
// Every adapter starts as an exact identity: its last projection (B, the 1×1 conv, up) is zero.
// Adapter parameters keep readable names below the module they adapt ("layer3.0.conv1.lora_A",
// "layer3.0.conv2.adapter.weight", "layer4.adapter.down.weight", "blocks.0.mlp.adapter.up.bias");
// the backbone's own tensors keep their names, so weights load by name before and after.
// Adapters always train (also with model.freeze = backbone); see models/adapter_hook.h.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/options.h"
#include "core/registry.h"
#include "models/backbone.h"

namespace shiftlab::adapters {

/// One parsed spec: kind(args)@patterns.
struct AdapterSpec {
  std::string kind;
  std::vector<std::pair<std::string, std::string>> args;  ///< in the order given
  std::vector<std::string> patterns;

  bool operator==(const AdapterSpec& o) const { return kind == o.kind && args == o.args && patterns == o.patterns; }
  /// Canonical text, e.g. "lora(r=8,alpha=16)@blocks.*.attn.qkv" (parses back to the same spec).
  std::string str() const;
  bool has(const std::string& key) const;
  /// Typed argument values; a bad value is a UsageError naming model.adapters, the spec and key.
  int64_t get_int(const std::string& key, int64_t def, int64_t lo) const;
  double get_float(const std::string& key, double def, double lo, double hi) const;
  std::string get_choice(const std::string& key, const std::string& def, const std::vector<std::string>& choices) const;
};

/// A module an adapter acts on: its dotted name in the backbone and the module itself.
struct AdapterTarget {
  std::string name;
  std::shared_ptr<torch::nn::Module> module;
};

/// What applying one spec did.
struct AdapterResult {
  std::vector<std::string> modules;  ///< names of the adapted modules
  int64_t params = 0;                ///< parameters added
};

/// A registered adapter kind: the argument names it accepts and how it is applied.
struct AdapterKind {
  std::vector<std::string> args;
  std::function<AdapterResult(models::BackboneImpl&, const AdapterSpec&)> apply;
};

/// The "adapters" registry (residual, bottleneck, lora).
core::Registry<AdapterKind>& adapter_registry();

/// Parses model.adapters (empty / blank = no adapters). Kinds and argument names are checked
/// against the registry; errors are core::SpecErrors (UsageErrors) naming model.adapters, the text
/// and the column of the culprit.
std::vector<AdapterSpec> parse_adapter_specs(const std::string& text);
/// The canonical text of a spec list ("; "-separated).
std::string format_adapter_specs(const std::vector<AdapterSpec>& specs);

/// Glob match: "*" = any run of characters other than ".", "**" = any run of characters.
bool match_pattern(const std::string& pattern, const std::string& name);

/// The targets matched by spec.patterns among `candidates` (candidate order, no duplicates). A
/// pattern matching none is a UsageError naming it and listing the candidates.
std::vector<AdapterTarget> resolve_targets(const AdapterSpec& spec, const std::vector<AdapterTarget>& candidates);

/// Backbone modules (name, module) not inside an adapter module, in named_modules() order.
std::vector<AdapterTarget> plain_modules(torch::nn::Module& root);
/// The module at dotted `path` below `root` (Error naming the path when absent).
std::shared_ptr<torch::nn::Module> module_at(torch::nn::Module& root, const std::string& path);
/// Replaces the module at `path` (its parent's child of that name) with `m`.
void replace_module_at(torch::nn::Module& root, const std::string& path, std::shared_ptr<torch::nn::Module> m);
/// Number of elements of the adapter-owned parameters of `m` (models::AdapterModule).
int64_t adapter_numel(const torch::nn::Module& m);

struct AdapterOptions {
  std::vector<AdapterSpec> specs;  ///< model.adapters, parsed
};

/// model.adapters (read through parse_adapter_specs, written with format_adapter_specs).
const core::OptionTable<AdapterOptions>& adapter_option_table();
inline void declare_adapter_options(core::Schema& s) { adapter_option_table().declare(s); }
inline AdapterOptions adapter_options_from(const core::Config& c) { return adapter_option_table().read(c); }

/// Per spec what was done, plus totals.
struct AdaptersReport {
  std::vector<std::pair<std::string, AdapterResult>> applied;  ///< spec text -> result
  int64_t params = 0;
  std::string summary() const;
};

/// Applies every spec in order to `bb` (a kind the backbone cannot take is a UsageError naming it).
AdaptersReport apply_adapters(models::BackboneImpl& bb, const AdapterOptions& o);

}  // namespace shiftlab::adapters
