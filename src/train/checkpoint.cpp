#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/serialize.h>

#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "core/fs.h"

namespace shiftlab::train {

static torch::Tensor json_tensor(const nlohmann::json& j) {
  auto s = j.dump();
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data(), s.size());
  return t;
}

static nlohmann::json tensor_json(const torch::Tensor& t) {
  auto c = t.contiguous();
  std::string s(reinterpret_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()));
  return nlohmann::json::parse(s);
}

void save_checkpoint(const std::string& path, const CheckpointParts& p) {
  torch::serialize::OutputArchive ar;
  ar.write("format_version", torch::tensor({kCheckpointVersion}));
  ar.write("meta", json_tensor(p.meta));
  if (p.model) {
    torch::serialize::OutputArchive m;
    p.model->save(m);
    ar.write("model", m);
  }
  if (p.method) {
    torch::serialize::OutputArchive m;
    p.method->save(m);
    ar.write("method", m);
  }
  if (p.optimizer) {
    torch::serialize::OutputArchive o;
    p.optimizer->save(o);
    ar.write("optimizer", o);
  }
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    ar.write("rng_cpu", gen.get_state());
  }
  core::atomic_write_with(path, [&](const std::string& tmp) { ar.save_to(tmp); });
}

nlohmann::json load_checkpoint(const std::string& path, CheckpointParts& p, bool restore_rng) {
  if (!std::filesystem::exists(path)) throw core::Error(core::str("checkpoint '", path, "' not found"));
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw core::Error(core::str("checkpoint '", path, "' is not readable: ", e.what_without_backtrace()));
  }
  torch::Tensor ver;
  if (!ar.try_read("format_version", ver) || ver.item<int64_t>() != kCheckpointVersion)
    throw core::Error(core::str("checkpoint '", path, "' has an unknown format version (expected ",
                                kCheckpointVersion, ")"));
  torch::Tensor meta;
  ar.read("meta", meta);
  auto section = [&](const char* name, auto&& fn) {
    torch::serialize::InputArchive sub;
    if (!ar.try_read(name, sub)) throw core::Error(core::str("checkpoint '", path, "' has no ", name, " state"));
    try {
      fn(sub);
    } catch (const c10::Error& e) {
      throw core::Error(core::str("checkpoint '", path, "': ", name, " state does not match this model: ",
                                  e.what_without_backtrace()));
    }
  };
  if (p.model) section("model", [&](auto& s) { p.model->load(s); });
  if (p.method) section("method", [&](auto& s) { p.method->load(s); });
  if (p.optimizer) section("optimizer", [&](auto& s) { p.optimizer->load(s); });
  if (restore_rng) {
    torch::Tensor st;
    if (ar.try_read("rng_cpu", st)) {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(st);
    }
  }
  return tensor_json(meta);
}

}  // namespace shiftlab::train
