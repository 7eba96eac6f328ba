// Fuzz target: the INI configuration parser (core::apply_ini_text, as --config files are read)
// on a schema with every option type. Any text must apply or throw core::UsageError; what applies
// must survive the resolved-config round trip (to_ini, parsed again, gives the same INI).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/options.h"

namespace {
shiftlab::core::Schema schema() {
  shiftlab::core::Schema s;
  s.add_string("method", "source_only", "a top-level key");
  s.add_bool("train.flag", false, "bool");
  s.add_int("train.steps", 10, "int with a range").range(0, 1e12);
  s.add_int("train.any", -3, "int");
  s.add_float("optim.lr", 0.01, "float with a range").range(0, 100);
  s.add_float("optim.any", 1.5, "float");
  s.add_path("model.weights", "", "path");
  s.add_list("model.taps", "a,b", "list");
  s.add_choice("data.source.layout", "auto", {"auto", "nhw", "nhwc", "nchw"}, "choice");
  s.add_string("data.source.transform", "resize(28)", "string");
  s.add_int("resume_step", 0, "a command flag").command_flag();
  return s;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shiftlab::core;
  std::string text(reinterpret_cast<const char*>(data), size);
  static const Schema kSchema = schema();
  Config cfg(kSchema);
  try {
    apply_ini_text(cfg, text, "fuzz.ini");
  } catch (const UsageError&) {
    return 0;
  }
  // the resolved configuration re-runs to itself
  std::string ini = cfg.to_ini();
  Config again(kSchema);
  try {
    apply_ini_text(again, ini, "resolved.ini");
  } catch (const UsageError&) {
    __builtin_trap();
  }
  if (again.to_ini() != ini) __builtin_trap();
  for (auto& k : kSchema.keys()) (void)cfg.get_string(k);
  (void)cfg.get_bool("train.flag");
  (void)cfg.get_int("train.steps");
  (void)cfg.get_float("optim.lr");
  (void)cfg.get_list("model.taps");
  return 0;
}
