// Standalone driver for the fuzz targets when built without libFuzzer (g++, the regular test
// suite): feeds every file named on the command line — directories: every file inside, sorted —
// to LLVMFuzzerTestOneInput, then `--mutations=N` deterministic variants of each file (bit flips,
// interesting byte and integer values, truncations, chunk deletion / duplication / insertion;
// a fixed-seed generator, so every run feeds the same inputs). A target that crashes, or lets an
// exception escape, ends the process abnormally and fails the test. Prints the number of inputs.
//
//   fuzz_replay TARGET [--mutations=N] [--verbose] FILE_OR_DIR...
//
// Built into one executable for every target: the generated replay_all.cpp (fuzz/CMakeLists.txt)
// includes each target with its entry point renamed fuzz_<name>_one, defines FUZZ_TARGETS as
// X(npy)X(pth)..., then includes this file.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#define X(name) extern "C" int fuzz_##name##_one(const uint8_t* data, size_t size);
FUZZ_TARGETS
#undef X

namespace {

struct Rng {  // splitmix64: tiny, deterministic on every platform
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string mutate(std::string b, Rng& r) {
  static const uint64_t kInteresting[] = {0,          1,          0x7f,       0x80,       0xff,
                                          0x7fff,     0xffff,     0x7fffffff, 0xffffffff, 0x7fffffffffffffffull,
                                          ~0ull,      1ull << 40, 1ull << 32, 1ull << 31, 64};
  int ops = 1 + static_cast<int>(r.below(3));
  for (int k = 0; k < ops; ++k) {
    size_t n = b.size();
    switch (r.below(7)) {
      case 0:  // flip a few bits
        for (int i = 0, m = 1 + static_cast<int>(r.below(4)); i < m && n; ++i)
          b[r.below(n)] ^= static_cast<char>(1u << r.below(8));
        break;
      case 1:  // an interesting byte
        if (n) b[r.below(n)] = static_cast<char>(kInteresting[r.below(5)] & 0xff);
        break;
      case 2:  // an interesting little-endian integer of 2, 4 or 8 bytes
        if (n) {
          size_t w = size_t{2} << r.below(3), at = r.below(n);
          uint64_t v = kInteresting[r.below(std::size(kInteresting))];
          for (size_t i = 0; i < w && at + i < n; ++i) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
        }
        break;
      case 3:  // truncate
        b.resize(r.below(n + 1));
        break;
      case 4:  // delete a chunk
        if (n) {
          size_t at = r.below(n), len = 1 + r.below(std::min<size_t>(n - at, 64));
          b.erase(at, len);
        }
        break;
      case 5:  // duplicate a chunk somewhere
        if (n) {
          size_t at = r.below(n), len = 1 + r.below(std::min<size_t>(n - at, 64));
          std::string chunk = b.substr(at, len);
          b.insert(r.below(b.size() + 1), chunk);
        }
        break;
      default: {  // insert random bytes
        std::string ins(1 + r.below(16), '\0');
        for (auto& c : ins) c = static_cast<char>(r.next() & 0xff);
        b.insert(r.below(n + 1), ins);
      }
    }
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using Entry = int (*)(const uint8_t*, size_t);
  struct Target {
    const char* name;
    Entry entry;
  };
#define X(name) {#name, fuzz_##name##_one},
  const Target targets[] = {FUZZ_TARGETS};
#undef X
  Entry LLVMFuzzerTestOneInput = nullptr;
  std::string names;
  for (const auto& t : targets) {
    names += std::string(names.empty() ? "" : ", ") + t.name;
    if (argc > 1 && std::string(argv[1]) == t.name) LLVMFuzzerTestOneInput = t.entry;
  }
  if (!LLVMFuzzerTestOneInput) {
    std::cerr << "usage: " << argv[0] << " TARGET [--mutations=N] [--verbose] FILE_OR_DIR...  (targets: " << names
              << ")\n";
    return 2;
  }
  long mutations = 0;
  bool verbose = false;
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--mutations=", 0) == 0) {
      mutations = std::stol(a.substr(12));
    } else if (a == "--verbose") {
      verbose = true;
    } else if (fs::is_directory(a)) {
      std::vector<std::string> in_dir;
      for (auto& e : fs::directory_iterator(a))
        if (e.is_regular_file()) in_dir.push_back(e.path().string());
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::is_regular_file(a)) {
      files.push_back(a);
    } else {
      std::cerr << argv[0] << ": no such file or directory: " << a << "\n";
      return 2;
    }
  }
  if (files.empty()) {
    std::cerr << "usage: " << argv[0] << " TARGET [--mutations=N] [--verbose] FILE_OR_DIR...\n";
    return 2;
  }
  long runs = 0;
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (verbose) std::cerr << "input " << f << " (" << bytes.size() << " bytes)\n";
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++runs;
    Rng r{fnv1a(fs::path(f).filename().string())};
    for (long k = 0; k < mutations; ++k) {
      std::string m = mutate(bytes, r);
      if (verbose) std::cerr << "  mutation " << k << " (" << m.size() << " bytes)\n";
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(m.data()), m.size());
      ++runs;
    }
  }
  std::cout << argv[0] << " " << argv[1] << ": " << runs << " inputs (" << files.size() << " files, " << mutations
            << " mutations each), no crash\n";
  return 0;
}
