// shiftlab weights info FILE      — tensors in a weights file (name, dtype, shape, numel), size, metadata
// shiftlab weights convert IN OUT — a torch.save .pth/.pt (or .safetensors) -> .safetensors
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "apps/command.h"
#include "core/format.h"
#include "core/error.h"
#include "core/log.h"
#include "models/weights.h"

namespace shiftlab::apps {

namespace {

std::string human_bytes(uint64_t b) {
  std::ostringstream os;
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  os << std::fixed << std::setprecision(u ? 1 : 0) << v << " " << units[u];
  return os.str();
}

bool is_safetensors(const std::string& path) {
  auto ext = std::filesystem::path(path).extension().string();
  if (ext == ".safetensors") return true;
  std::ifstream in(path, std::ios::binary);
  char m[4] = {0};
  in.read(m, 4);
  bool zip = in.gcount() == 4 && std::memcmp(m, "PK\x03\x04", 4) == 0;
  bool pickle = in.gcount() >= 1 && static_cast<unsigned char>(m[0]) == 0x80;
  return !zip && !pickle && ext != ".pth" && ext != ".pt";
}

struct Row {
  std::string name, dtype;
  std::vector<int64_t> shape;
  int64_t numel;
  uint64_t bytes;
};

int run_info(const core::Config& cfg, const std::vector<std::string>&) {
  const std::string& path = cfg.positional.at(0);
  std::vector<Row> rows;
  std::map<std::string, std::string> metadata;
  std::string format;
  if (is_safetensors(path)) {
    format = "safetensors";
    auto h = models::read_safetensors_header(path);
    metadata = h.metadata;
    for (auto& e : h.entries) {
      int64_t n = 1;
      for (auto d : e.shape) n *= d;
      rows.push_back({e.name, e.dtype, e.shape, n, e.end - e.begin});
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.name < b.name; });
  } else {
    format = "torch.save";
    for (auto& [k, t] : models::load_pth(path))
      rows.push_back({k, models::safetensors_dtype_code(t.scalar_type(), k), t.sizes().vec(), t.numel(),
                      static_cast<uint64_t>(t.numel()) * t.element_size()});
  }
  size_t w = 4;
  for (auto& r : rows) w = std::max(w, r.name.size());
  std::cout << std::left << std::setw(static_cast<int>(w)) << "name" << "  " << std::setw(5) << "dtype" << "  "
            << std::setw(20) << "shape" << "  " << "numel\n";
  int64_t total = 0;
  uint64_t bytes = 0;
  for (auto& r : rows) {
    std::cout << std::left << std::setw(static_cast<int>(w)) << r.name << "  " << std::setw(5) << r.dtype << "  "
              << std::setw(20) << core::shape_str(r.shape) << "  " << r.numel << "\n";
    total += r.numel;
    bytes += r.bytes;
  }
  std::cout << "\n" << path << ": " << format << ", " << rows.size() << " tensors, " << total << " elements, "
            << human_bytes(bytes) << " (" << bytes << " bytes)\n";
  if (!metadata.empty()) {
    std::cout << "metadata:\n";
    for (auto& [k, v] : metadata) std::cout << "  " << k << " = " << v << "\n";
  }
  return 0;
}

int run_convert(const core::Config& cfg, const std::vector<std::string>&) {
  const std::string& in = cfg.positional.at(0);
  const std::string& out = cfg.positional.at(1);
  {  // converting a file onto itself would replace the only copy of the weights
    namespace fs = std::filesystem;
    std::error_code ec;
    const bool same = fs::exists(out, ec) ? fs::equivalent(in, out, ec)
                                          : fs::absolute(in).lexically_normal() == fs::absolute(out).lexically_normal();
    core::check_usage(!same, "weights convert: OUT '", out, "' is the input file; give another name (e.g. ",
                      fs::path(in).stem().string(), ".safetensors)");
  }
  auto tensors = models::load_weights_file(in);
  std::map<std::string, std::string> meta = {{"format", "pt"},
                                             {"source", std::filesystem::path(in).filename().string()}};
  models::save_safetensors(out, tensors, meta);
  uint64_t bytes = 0;
  for (auto& [k, t] : tensors) bytes += static_cast<uint64_t>(t.numel()) * t.element_size();
  std::cout << "wrote " << out << ": " << tensors.size() << " tensors, " << human_bytes(bytes) << "\n";
  return 0;
}

}  // namespace

SHIFTLAB_COMMAND("weights info", "list the tensors of a weights file (.safetensors, .pth/.pt): name, dtype, shape",
                 [] { return core::Schema(); }, core::Positionals{"FILE", 1, 1},
                 "Reads only the header of a .safetensors file; a .pth/.pt is loaded (restricted unpickler).\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab weights info resnet18.pth\n"
                 "  shiftlab weights convert resnet18.pth resnet18.safetensors\n"
                 "  shiftlab weights info resnet18.safetensors",
                 run_info);

SHIFTLAB_COMMAND("weights convert", "convert a torch.save .pth/.pt state dict to .safetensors (names kept)",
                 [] { return core::Schema(); }, core::Positionals{"IN OUT", 2, 2},
                 "Reads plain dicts and OrderedDicts of tensors (torchvision's downloads), zip or legacy\n"
                 "format, optionally nested under 'state_dict' / 'model'. For a whole pickled model or a\n"
                 "torchvision/timm model name use scripts/convert_weights.py (Python).\n"
                 "\n"
                 "Examples (resnet18.pth: a torchvision state dict, e.g. torch.save(resnet18().state_dict(), ...)):\n"
                 "  shiftlab weights convert resnet18.pth resnet18.safetensors\n"
                 "  shiftlab weights info resnet18.safetensors",
                 run_convert);

}  // namespace shiftlab::apps
