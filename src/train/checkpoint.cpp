#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/serialize.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

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

torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void save_checkpoint(const std::string& path, const CheckpointParts& p) {
  torch::serialize::OutputArchive ar;
  ar.write("format_version", torch::tensor({kCheckpointVersion}));
  ar.write("meta", json_tensor(p.meta));
  if (p.model && p.trainable_only) {
    // flat: tensors t0, t1, ... whose names (and the base reference) are in model_trainable_meta
    torch::serialize::OutputArchive m;
    nlohmann::json names = nlohmann::json::array();
    for (auto& kv : p.model->named_parameters(true))
      if (kv.value().requires_grad()) {
        m.write("t" + std::to_string(names.size()), kv.value().detach());
        names.push_back(kv.key());
      }
    for (auto& kv : p.model->named_buffers(true)) {
      m.write("t" + std::to_string(names.size()), kv.value().detach(), /*is_buffer=*/true);
      names.push_back(kv.key());
    }
    ar.write("model_trainable", m);
    ar.write("model_trainable_meta",
             json_tensor({{"names", names}, {"base_weights", p.base_weights}, {"base_sha256", p.base_sha256}}));
  } else if (p.model) {
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
  ar.write("rng_cpu", cpu_rng_state());
  if (p.rank_rng_states.defined()) ar.write("rng_cpu_ranks", p.rank_rng_states.to(torch::kCPU));
  // torch's archive writer must never see a failed write: on a short write it throws from its
  // destructor (writeEndOfFile), which ends the process with std::terminate. So the bytes go
  // through our own writer, which keeps the first error and reports it after the archive is done.
  core::atomic_write_with(path, [&](const std::string& tmp) {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw core::Error(core::str("cannot write checkpoint '", path, "': ", std::strerror(errno)));
    int err = 0;
    auto writer = [&](const void* buf, size_t n) -> size_t {
      const char* p = static_cast<const char*>(buf);
      size_t left = n;
      while (err == 0 && left > 0) {
        ssize_t k = ::write(fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
          err = k < 0 ? errno : ENOSPC;
          break;
        }
        p += k;
        left -= static_cast<size_t>(k);
      }
      return n;
    };
    try {
      ar.save_to(writer);
    } catch (const c10::Error& e) {
      ::close(fd);
      std::string m = e.what_without_backtrace();
      throw core::Error(core::str("cannot write checkpoint '", path, "': ", m.substr(0, m.find('\n'))));
    }
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0)
      throw core::Error(core::str("cannot write checkpoint '", path, "': ", std::strerror(err),
                                  err == EFBIG ? " (over the file size limit)" : ""));
  });
}

// The model section of a trainable-only checkpoint: check the base reference, then copy each
// stored tensor by name; every trainable parameter of the model must be among them.
static void load_trainable_only(const std::string& path, torch::serialize::InputArchive& ar, const nlohmann::json& tm,
                                CheckpointParts& p) {
  const std::string base = tm.value("base_weights", ""), sha = tm.value("base_sha256", "");
  if (!sha.empty() && sha != p.base_sha256)
    throw core::Error(core::str(
        "checkpoint '", path, "' holds only the trainable tensors on top of the base weights '", base, "' (sha256 ",
        sha.substr(0, 12), "...), but this model was built from ",
        p.base_sha256.empty() ? std::string("no weights file")
                              : core::str("'", p.base_weights, "' with sha256 ", p.base_sha256.substr(0, 12), "..."),
        "; restore that file (model.weights) to load it"));
  torch::serialize::InputArchive sub;
  if (!ar.try_read("model_trainable", sub)) throw core::Error(core::str("checkpoint '", path, "' has no model state"));
  auto params = p.model->named_parameters(true);
  auto buffers = p.model->named_buffers(true);
  std::set<std::string> stored;
  const auto& names = tm.at("names");
  torch::NoGradGuard ng;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string name = names[i].get<std::string>();
    torch::Tensor* dst = params.find(name);
    if (!dst) dst = buffers.find(name);
    if (!dst) throw core::Error(core::str("checkpoint '", path, "': tensor '", name, "' is not in this model"));
    torch::Tensor t;
    sub.read("t" + std::to_string(i), t);
    if (!t.sizes().equals(dst->sizes()))
      throw core::Error(core::str("checkpoint '", path, "': tensor '", name, "' has another shape than in this model"));
    dst->copy_(t);
    stored.insert(name);
  }
  for (auto& kv : params)
    if (kv.value().requires_grad() && !stored.count(kv.key()))
      throw core::Error(core::str("checkpoint '", path, "' holds only trainable tensors and lacks '", kv.key(),
                                  "', which trains in this model (different model.freeze or model.adapters?)"));
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
  torch::Tensor tmeta;
  if (p.model && ar.try_read("model_trainable_meta", tmeta)) {
    load_trainable_only(path, ar, tensor_json(tmeta), p);
  } else if (p.model) {
    section("model", [&](auto& s) { p.model->load(s); });
  }
  if (p.method) section("method", [&](auto& s) { p.method->load(s); });
  if (p.optimizer) section("optimizer", [&](auto& s) { p.optimizer->load(s); });
  if (restore_rng) {
    torch::Tensor st, ranks;
    if (p.rank >= 0 && ar.try_read("rng_cpu_ranks", ranks)) {
      if (p.rank >= ranks.size(0))
        throw core::Error(core::str("checkpoint '", path, "' holds the RNG states of ", ranks.size(0),
                                    " ranks; this is rank ", p.rank));
      st = ranks[p.rank].clone();
    } else if (!ar.try_read("rng_cpu", st)) {
      st = torch::Tensor();
    }
    if (st.defined()) {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(st);
    }
  }
  return tensor_json(meta);
}

}  // namespace shiftlab::train
