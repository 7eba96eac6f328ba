#include "models/weights.h"

#include <torch/torch.h>

#include <cstring>
#include <fstream>

#include "core/format.h"
#include "core/error.h"
#include "core/log.h"

namespace shiftlab::models {

using core::Error;

TensorMap state_dict(const torch::nn::Module& m) {
  TensorMap out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers(/*recurse=*/true)) out[b.key()] = b.value();
  return out;
}

namespace {

bool starts_with_any(const std::string& k, const std::vector<std::string>& prefixes) {
  for (auto& p : prefixes)
    if (!p.empty() && k.compare(0, p.size(), p) == 0) return true;
  return false;
}

std::string first_few(const std::vector<std::string>& v, size_t n = 5) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < n; ++i) out += (i ? ", " : "") + v[i];
  if (v.size() > n) out += core::str(", … (", v.size() - n, " more)");
  return out;
}

}  // namespace

std::string LoadReport::summary() const {
  std::string s = core::str("loaded ", loaded, "/", total, " tensors");
  if (!missing.empty()) s += core::str("; missing ", missing.size(), ": ", first_few(missing));
  if (!unexpected.empty()) s += core::str("; unexpected ", unexpected.size(), ": ", first_few(unexpected));
  if (!shape_mismatch.empty())
    s += core::str("; shape mismatch ", shape_mismatch.size(), ": ", first_few(mismatch_details));
  if (!skipped.empty()) s += core::str("; skipped by prefix ", skipped.size(), ": ", first_few(skipped));
  return s;
}

LoadReport load_state_dict(torch::nn::Module& m, const TensorMap& w, bool strict,
                           const std::vector<std::string>& skip_prefixes) {
  LoadReport r;
  TensorMap own = state_dict(m);
  r.total = static_cast<int64_t>(own.size());
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (auto& [k, t] : own) {
    if (starts_with_any(k, skip_prefixes)) {
      r.skipped.push_back(k);
      continue;
    }
    auto it = w.find(k);
    if (it == w.end()) {
      r.missing.push_back(k);
      continue;
    }
    const auto& src = it->second;
    if (!src.defined() || src.sizes() != t.sizes()) {
      r.shape_mismatch.push_back(k);
      r.mismatch_details.push_back(core::str(k, ": model ", core::shape_str(t.sizes()), " vs file ",
                                       src.defined() ? core::shape_str(src.sizes()) : std::string("undefined")));
      continue;
    }
    copies.emplace_back(t, src);
  }
  for (auto& [k, t] : w) {
    if (own.count(k)) continue;
    if (starts_with_any(k, skip_prefixes)) r.skipped.push_back(k);
    else r.unexpected.push_back(k);
  }
  if (strict && !r.ok()) {
    std::string msg = "state dict does not match the model";
    if (!r.missing.empty()) msg += core::str("; missing keys (", r.missing.size(), "): ", first_few(r.missing));
    if (!r.unexpected.empty()) msg += core::str("; unexpected keys (", r.unexpected.size(), "): ", first_few(r.unexpected));
    if (!r.shape_mismatch.empty())
      msg += core::str("; shape mismatches (", r.shape_mismatch.size(), "): ", first_few(r.mismatch_details));
    msg += " — set model.strict = false to load what matches, or skip keys by prefix";
    throw Error(msg);
  }
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) {
    dst.copy_(src);
    ++r.loaded;
  }
  // non-strict loading that leaves most of the model as initialised is almost always the wrong
  // file (another backbone, a prefixed state dict): say so on the console, not only in the log
  int64_t own_skipped = 0;
  for (auto& [k, t] : own) own_skipped += starts_with_any(k, skip_prefixes);
  const int64_t wanted = r.total - own_skipped;
  if (!strict && wanted > 0 && 2 * r.loaded < wanted)
    core::log_warn("model.strict = false: only ", r.loaded, " of ", wanted,
                   " tensors of the model were loaded from the weights (", r.summary(),
                   "); the rest keep their random initialisation — are these weights for this backbone?");
  return r;
}

TensorMap load_weights_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(core::str("cannot open weights file '", path, "': ", std::strerror(errno)));
  char magic[9] = {0};
  in.read(magic, 9);
  auto got = in.gcount();
  in.close();
  auto ext = [&](const char* e) {
    size_t n = std::strlen(e);
    return path.size() >= n && path.compare(path.size() - n, n, e) == 0;
  };
  // a safetensors file starts with its header's length (little-endian u64) and then '{'; checked
  // first, because a header of 640 bytes starts with 0x80 0x02 like a protocol-2 pickle
  uint64_t header_len = 0;
  for (int i = 7; i >= 0 && got >= 8; --i) header_len = (header_len << 8) | static_cast<unsigned char>(magic[i]);
  bool safetensors = got == 9 && magic[8] == '{' && header_len >= 2 && header_len < (uint64_t(1) << 32);
  if (safetensors) return load_safetensors(path);
  bool zip = got >= 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
  bool pickle = got >= 2 && static_cast<unsigned char>(magic[0]) == 0x80 && magic[1] >= 2 && magic[1] <= 5;
  if (zip || pickle) return load_pth(path);
  if (ext(".safetensors") || ext(".st")) return load_safetensors(path);
  if (ext(".pth") || ext(".pt") || ext(".bin") || ext(".ckpt") || ext(".tar")) return load_pth(path);
  throw Error(core::str("'", path, "': unrecognised weights file (expected .safetensors or a torch.save .pth/.pt)"));
}

}  // namespace shiftlab::models
