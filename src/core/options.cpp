#include "core/options.h"

#include "core/format.h"

#include <boost/program_options.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/registry.h"

namespace po = boost::program_options;

namespace shiftlab::core {

// a configuration file is text of a few kilobytes; anything far larger is the wrong file
constexpr uintmax_t kMaxConfigBytes = 16u << 20;

const char* type_name(OptType t) {
  switch (t) {
    case OptType::Bool: return "bool";
    case OptType::Int: return "int";
    case OptType::Float: return "float";
    case OptType::String: return "string";
    case OptType::Path: return "path";
    case OptType::Choice: return "choice";
    case OptType::List: return "list";
  }
  return "?";
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_list(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string format_number(double v) {
  char b[64];
  for (int digits = 10; digits <= 17; ++digits) {
    std::snprintf(b, sizeof b, "%.*g", digits, v);
    if (std::strtod(b, nullptr) == v) break;
  }
  return b;
}

std::vector<std::string> OptionSpec::all_choices() const {
  return dynamic_choices ? dynamic_choices() : choices;
}

// ---------------------------------------------------------------- Schema

OptionSpec& Schema::add(OptionSpec spec) {
  if (specs_.count(spec.key)) throw Error(str("option '", spec.key, "' declared twice"));
  order_.push_back(spec.key);
  auto key = spec.key;
  return specs_.emplace(key, std::move(spec)).first->second;
}

static OptionSpec make(const std::string& key, OptType t, std::string def, const std::string& doc) {
  OptionSpec s;
  s.key = key;
  s.type = t;
  s.default_value = std::move(def);
  s.doc = doc;
  return s;
}

OptionSpec& Schema::add_bool(const std::string& k, bool d, const std::string& doc) {
  return add(make(k, OptType::Bool, d ? "true" : "false", doc));
}
OptionSpec& Schema::add_int(const std::string& k, long long d, const std::string& doc) {
  return add(make(k, OptType::Int, std::to_string(d), doc));
}
OptionSpec& Schema::add_float(const std::string& k, double d, const std::string& doc) {
  return add(make(k, OptType::Float, format_number(d), doc));
}
OptionSpec& Schema::add_string(const std::string& k, const std::string& d, const std::string& doc) {
  return add(make(k, OptType::String, d, doc));
}
OptionSpec& Schema::add_path(const std::string& k, const std::string& d, const std::string& doc) {
  return add(make(k, OptType::Path, d, doc));
}
OptionSpec& Schema::add_list(const std::string& k, const std::string& d, const std::string& doc) {
  return add(make(k, OptType::List, d, doc));
}
OptionSpec& Schema::add_choice(const std::string& k, const std::string& d,
                               std::vector<std::string> choices, const std::string& doc) {
  auto s = make(k, OptType::Choice, d, doc);
  s.choices = std::move(choices);
  return add(std::move(s));
}
OptionSpec& Schema::add_registry_choice(const std::string& k, const std::string& d,
                                        std::function<std::vector<std::string>()> names,
                                        const std::string& doc) {
  auto s = make(k, OptType::Choice, d, doc);
  s.dynamic_choices = std::move(names);
  return add(std::move(s));
}

const OptionSpec& Schema::spec(const std::string& key) const {
  auto it = specs_.find(key);
  if (it == specs_.end()) throw Error(str("internal: option '", key, "' is not declared"));
  return it->second;
}

static std::string section_of(const std::string& key) {
  auto p = key.rfind('.');
  return p == std::string::npos ? "" : key.substr(0, p);
}

static std::string leaf_of(const std::string& key) {
  auto p = key.rfind('.');
  return p == std::string::npos ? key : key.substr(p + 1);
}

static std::string type_desc(const OptionSpec& s) {
  std::string t = type_name(s.type);
  if (s.type == OptType::Choice) {
    std::string c;
    for (auto& x : s.all_choices()) c += (c.empty() ? "" : "|") + x;
    t = c.empty() ? "name" : c;
  }
  if ((s.type == OptType::Int || s.type == OptType::Float || s.type == OptType::List) &&
      (std::isfinite(s.min) || std::isfinite(s.max))) {
    t += str(" in [", std::isfinite(s.min) ? shortest(s.min) : "-inf", ", ",
             std::isfinite(s.max) ? shortest(s.max) : "inf", "]");
  }
  return t;
}

std::string Schema::help() const {
  // group by section, keeping declaration order of the first key of each section
  std::vector<std::string> sections;
  std::map<std::string, std::vector<std::string>> by;
  for (auto& k : order_) {
    auto sec = specs_.at(k).cli_only ? std::string("command") : section_of(k);
    if (!by.count(sec)) sections.push_back(sec);
    by[sec].push_back(k);
  }
  std::ostringstream os;
  for (auto& sec : sections) {
    os << "\n" << (sec.empty() ? std::string("general") : sec) << " options:\n";
    for (auto& k : by[sec]) {
      const auto& s = specs_.at(k);
      std::string left = s.short_name ? core::str("  -", s.short_name, ", --", k) : "  --" + k;
      if (s.type != OptType::Bool || !s.cli_only) left += "=<" + type_desc(s) + ">";
      os << left;
      if (left.size() < 40) os << std::string(40 - left.size(), ' ');
      else os << "\n" << std::string(40, ' ');
      os << s.doc;
      if (!s.cli_only || !s.default_value.empty())
        os << " (default: " << (s.default_value.empty() ? "\"\"" : s.default_value) << ")";
      os << "\n";
    }
  }
  return os.str();
}

// ---------------------------------------------------------------- Config

Config::Config(Schema schema) : schema_(std::move(schema)) {
  for (auto& k : schema_.keys()) values_[k] = schema_.spec(k).default_value;
}

static bool parse_bool(const std::string& v, bool& out) {
  std::string l;
  for (char c : v) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "true" || l == "1" || l == "yes" || l == "on") { out = true; return true; }
  if (l == "false" || l == "0" || l == "no" || l == "off") { out = false; return true; }
  return false;
}

static bool parse_ll(const std::string& v, long long& out) {
  if (v.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtoll(v.c_str(), &end, 10);
  if (errno == 0 && end && *end == '\0') return true;
  // accept integral floats such as 1e4
  double d = std::strtod(v.c_str(), &end);
  if (end && *end == '\0' && std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e18) {
    out = static_cast<long long>(d);
    return true;
  }
  return false;
}

static bool parse_d(const std::string& v, double& out) {
  if (v.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtod(v.c_str(), &end);
  return errno == 0 && end && *end == '\0' && std::isfinite(out);
}

namespace {

/// The declared key to suggest for an unknown one: the nearest by edit distance over the whole key
/// (core::nearest: typos, and "lr" -> "optim.lr" by suffix), unless the key's last component is
/// nearer to another key's last component — the right name in the wrong section — counted as that
/// distance + 1 for the section: "train.lrr" -> "optim.lr" (2), not "train.amp" (3 edits).
std::string nearest_option_key(const std::string& key, const std::vector<std::string>& keys) {
  auto leaf = [](const std::string& k) {
    auto p = k.rfind('.');
    return p == std::string::npos ? k : k.substr(p + 1);
  };
  auto section = [](const std::string& k) {
    auto p = k.rfind('.');
    return p == std::string::npos ? std::string() : k.substr(0, p);
  };
  const size_t limit = std::max<size_t>(2, key.size() / 3);  // as core::nearest
  const size_t npos = std::string::npos;
  std::string best = nearest(key, keys);
  size_t best_d = npos;
  if (!best.empty()) {
    const bool suffix = best.size() > key.size() && best.compare(best.size() - key.size(), key.size(), key) == 0 &&
                        best[best.size() - key.size() - 1] == '.';
    best_d = suffix ? 1 : edit_distance(key, best);
  }
  const std::string kl = leaf(key), ks = section(key);
  for (const auto& k : keys) {
    const std::string l = leaf(k);
    const size_t diff = kl.size() > l.size() ? kl.size() - l.size() : l.size() - kl.size();
    if (diff > limit) continue;  // hopeless, and a huge key stays cheap
    const size_t d = edit_distance(kl, l) + (section(k) == ks ? 0 : 1);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best_d <= limit ? best : std::string();
}

}  // namespace

void Config::set(const std::string& key, const std::string& value_in, const std::string& origin) {
  std::string where = origin.empty() ? "" : str(" (", origin, ")");
  if (!schema_.has(key)) {
    std::string hint = nearest_option_key(key, schema_.keys());
    throw UsageError(str("unknown option '", key, "'", where,
                         hint.empty() ? "" : str(" — did you mean '", hint, "'?")));
  }
  const auto& s = schema_.spec(key);
  std::string value = trim(value_in);
  auto bad = [&](const std::string& expected) {
    throw UsageError(str("option '", key, "'", where, ": expected ", expected, ", got '", value, "'"));
  };
  switch (s.type) {
    case OptType::Bool: {
      bool b;
      if (!parse_bool(value, b)) bad("true or false");
      value = b ? "true" : "false";
      break;
    }
    case OptType::Int: {
      long long v;
      if (!parse_ll(value, v)) bad("an integer");
      if (v < s.min || v > s.max) bad(str("an integer ", type_desc(s).substr(4)));
      value = std::to_string(v);
      break;
    }
    case OptType::Float: {
      double v;
      if (!parse_d(value, v)) bad("a number");
      if (v < s.min || v > s.max) bad(str("a number ", type_desc(s).substr(6)));
      break;
    }
    case OptType::Choice: {
      auto choices = s.all_choices();
      bool ok = false;
      for (auto& c : choices) ok = ok || c == value;
      if (!ok) {
        std::string c;
        for (auto& x : choices) c += (c.empty() ? "" : ", ") + x;
        std::string hint = nearest(value, choices);
        throw UsageError(str("option '", key, "'", where, ": unknown value '", value, "'",
                             hint.empty() ? "" : str(" — did you mean '", hint, "'?"),
                             " (expected one of: ", c, ")"));
      }
      break;
    }
    case OptType::String:
    case OptType::Path:
    case OptType::List:
      break;
  }
  values_[key] = value;
  explicit_[key] = origin;
}

const std::string& Config::raw(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw Error(str("internal: option '", key, "' is not declared for this command"));
  return it->second;
}

bool Config::get_bool(const std::string& key) const {
  bool b = false;
  parse_bool(raw(key), b);
  return b;
}
long long Config::get_int(const std::string& key) const {
  long long v = 0;
  if (!parse_ll(raw(key), v)) throw UsageError(str("option '", key, "': expected an integer, got '", raw(key), "'"));
  return v;
}
double Config::get_float(const std::string& key) const {
  double v = 0;
  if (!parse_d(raw(key), v)) throw UsageError(str("option '", key, "': expected a number, got '", raw(key), "'"));
  return v;
}
const std::string& Config::get_string(const std::string& key) const { return raw(key); }
std::vector<std::string> Config::get_list(const std::string& key) const { return split_list(raw(key)); }

std::string Config::to_ini(const std::string& header) const {
  std::ostringstream os;
  if (!header.empty()) os << header;
  // top-level keys first (INI keys before any section), then sections in first-seen order
  std::vector<std::string> sections{""};
  std::map<std::string, std::vector<std::string>> by;
  for (auto& k : schema_.keys()) {
    const auto& s = schema_.spec(k);
    if (s.cli_only) continue;
    auto sec = section_of(k);
    if (!by.count(sec) && !sec.empty()) sections.push_back(sec);
    by[sec].push_back(k);
  }
  for (auto& sec : sections) {
    if (!by.count(sec)) continue;
    if (!sec.empty()) os << "\n[" << sec << "]\n";
    for (auto& k : by[sec]) {
      const auto& s = schema_.spec(k);
      os << "# " << s.doc << " (" << type_desc(s) << ", default: "
         << (s.default_value.empty() ? "\"\"" : s.default_value) << ")\n";
      os << leaf_of(k) << " = " << values_.at(k) << "\n";
    }
  }
  return os.str();
}

// ---------------------------------------------------------------- option values of tables

namespace detail {

void throw_option_error(const std::string& key, const std::string& what) {
  throw UsageError(str("option '", key, "': ", what));
}

static std::string range_text(const OptionSpec& s) {
  return str("[", std::isfinite(s.min) ? format_number(s.min) : "-inf", ", ",
             std::isfinite(s.max) ? format_number(s.max) : "inf", "]");
}

long long parse_option_int(const std::string& key, const std::string& item, const OptionSpec& spec) {
  long long v = 0;
  if (!parse_ll(item, v)) throw_option_error(key, str("'", item, "' is not an integer"));
  if (v < spec.min || v > spec.max) throw_option_error(key, str("'", item, "' is outside ", range_text(spec)));
  return v;
}

double parse_option_float(const std::string& key, const std::string& item, const OptionSpec& spec) {
  double v = 0;
  if (!parse_d(item, v)) throw_option_error(key, str("'", item, "' is not a number"));
  if (v < spec.min || v > spec.max) throw_option_error(key, str("'", item, "' is outside ", range_text(spec)));
  return v;
}

std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (auto& x : items) out += (out.empty() ? "" : ",") + x;
  return out;
}

}  // namespace detail

bool OptionValue<bool>::read(const Config& c, const std::string& key, const OptionSpec&) {
  bool b = false;
  if (!parse_bool(c.get_string(key), b))
    detail::throw_option_error(key, str("expected true or false, got '", c.get_string(key), "'"));
  return b;
}

double OptionValue<double>::read(const Config& c, const std::string& key, const OptionSpec& spec) {
  return detail::parse_option_float(key, c.get_string(key), spec);
}

std::string OptionValue<std::string>::read(const Config& c, const std::string& key, const OptionSpec&) {
  return c.get_string(key);
}

std::vector<std::string> OptionValue<std::vector<std::string>>::read(const Config& c, const std::string& key,
                                                                      const OptionSpec&) {
  return c.get_list(key);
}

std::string OptionValue<std::vector<double>>::format(const std::vector<double>& v) {
  std::vector<std::string> items;
  for (double x : v) items.push_back(format_number(x));
  return detail::join_list(items);
}

std::vector<double> OptionValue<std::vector<double>>::read(const Config& c, const std::string& key,
                                                           const OptionSpec& spec) {
  std::vector<double> v;
  for (auto& item : c.get_list(key)) v.push_back(detail::parse_option_float(key, item, spec));
  return v;
}

std::string OptionValue<std::vector<int64_t>>::format(const std::vector<int64_t>& v) {
  std::vector<std::string> items;
  for (auto x : v) items.push_back(std::to_string(x));
  return detail::join_list(items);
}

std::vector<int64_t> OptionValue<std::vector<int64_t>>::read(const Config& c, const std::string& key,
                                                             const OptionSpec& spec) {
  std::vector<int64_t> v;
  for (auto& item : c.get_list(key)) v.push_back(detail::parse_option_int(key, item, spec));
  return v;
}

// ---------------------------------------------------------------- parsing

// The command line's options for boost (a bare --flag means true for bools).
static po::options_description describe(const Schema& schema) {
  po::options_description desc;
  for (auto& k : schema.keys()) {
    const auto& s = schema.spec(k);
    const std::string name = s.short_name ? k + "," + s.short_name : k;
    if (s.type == OptType::Bool)
      desc.add_options()(name.c_str(), po::value<std::string>()->implicit_value("true"), "");
    else
      desc.add_options()(name.c_str(), po::value<std::string>(), "");
  }
  return desc;
}

// INI text, line by line, as boost::program_options' config-file parser reads it (the syntax the
// configs were written for): '#' starts a comment anywhere on a line, blanks and tabs around are
// ignored, "[a.b]" makes later keys "a.b.key", "key = value" splits at the first '='. Parsed here
// rather than by boost, whose error message for an invalid line loops forever when the line holds
// one of its "%placeholder%" tokens (found by fuzzing); errors also name the line number.
std::vector<IniEntry> parse_ini_text(const std::string& text, const std::string& origin) {
  // a NUL byte would end a value silently: refuse it
  auto nul = text.find('\0');
  if (nul != std::string::npos)
    throw UsageError(str("config file '", origin, "': NUL byte at offset ", nul, " (not a text file)"));
  auto trim_ws = [](const std::string& x) {
    size_t b = x.find_first_not_of(" \t\r");
    if (b == std::string::npos) return std::string();
    return x.substr(b, x.find_last_not_of(" \t\r") - b + 1);
  };
  std::vector<IniEntry> entries;
  // a UTF-8 byte order mark (Windows editors write one) is not part of the first line
  std::istringstream in(text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? text.substr(3) : text);
  std::string line, prefix;
  size_t row = 0;
  while (std::getline(in, line)) {
    ++row;
    std::string s = trim_ws(line.substr(0, line.find('#')));
    if (s.empty()) continue;
    if (s.front() == '[' && s.back() == ']') {
      prefix = trim_ws(s.substr(1, s.size() - 2));
      if (prefix.empty())
        throw UsageError(str("config file '", origin, "' line ", row, ": empty section name '", s, "'"));
      if (prefix.back() != '.') prefix += '.';
      continue;
    }
    auto eq = s.find('=');
    if (eq == std::string::npos)
      throw UsageError(str("config file '", origin, "' line ", row, ": cannot read '", s,
                           "' (expected [section] or key = value)"));
    std::string key = trim_ws(s.substr(0, eq));
    if (key.empty()) throw UsageError(str("config file '", origin, "' line ", row, ": no key before '='"));
    entries.push_back({prefix + key, trim_ws(s.substr(eq + 1)), row});
  }
  return entries;
}

void apply_ini_text(Config& cfg, const std::string& text, const std::string& origin) {
  std::map<std::string, size_t> first_line;  // a key given twice in one file: the last wins, said aloud
  for (auto& e : parse_ini_text(text, origin)) {
    auto [it, fresh] = first_line.emplace(e.key, e.line);
    if (!fresh)
      log_warn("config file '", origin, "' line ", e.line, ": '", e.key, "' is also set on line ", it->second,
               "; the later value '", e.value, "' wins");
    if (cfg.schema().has(e.key) && cfg.schema().spec(e.key).cli_only)
      throw UsageError(str("config file '", origin, "' line ", e.line, ": '", e.key,
                           "' is a command-line option, not a config key"));
    cfg.set(e.key, e.value, origin);
  }
}

void apply_ini_file(Config& cfg, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw UsageError(str("config file '", path, "' is a directory (give an .ini file, e.g. ",
                         (fs::path(path) / "experiment.ini").string(), ")"));
  if (!fs::is_regular_file(path, ec)) throw UsageError(str("config file '", path, "' not found"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(str("config file '", path, "' cannot be read"));
  auto size = fs::file_size(path, ec);
  if (!ec && size > kMaxConfigBytes)
    throw UsageError(str("config file '", path, "' is ", size, " bytes; a configuration is at most ", kMaxConfigBytes,
                         " bytes (wrong file?)"));
  std::ostringstream os;
  os << in.rdbuf();
  apply_ini_text(cfg, os.str(), path);
}

Config parse_args(const Schema& schema, const std::vector<std::string>& args, const Positionals& pos) {
  Config cfg(schema);
  auto desc = describe(schema);
  desc.add_options()("help,h", po::bool_switch(), "")("config,c", po::value<std::vector<std::string>>(), "")(
      "__positional", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pd;
  pd.add("__positional", -1);
  po::parsed_options parsed(nullptr);
  // "--key=" sets key to the empty string (clears a value a config file gave), which boost's parser
  // refuses ("should follow immediately the equal sign"): it travels as a marker value
  static const std::string kEmpty = "\x01shiftlab-empty\x01";
  std::vector<std::string> argv = args;
  for (auto& a : argv)
    if (a.size() > 3 && a.rfind("--", 0) == 0 && a.back() == '=' && a.find('=') == a.size() - 1) a += kEmpty;
  try {
    int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    parsed = po::command_line_parser(argv).options(desc).positional(pd).style(style).allow_unregistered().run();
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  std::vector<std::pair<std::string, std::string>> overrides;
  for (auto& o : parsed.options) {
    if (o.unregistered) {
      std::string key = o.string_key;
      std::string shown = o.original_tokens.empty() ? key : o.original_tokens.front();
      std::string hint = nearest_option_key(key, schema.keys());
      throw UsageError(str("unknown option '", key.empty() ? shown : key, "'",
                           hint.empty() ? "" : str(" — did you mean '", hint, "'?")));
    }
    if (o.string_key == "help") {
      cfg.help = true;
    } else if (o.string_key == "config") {
      for (auto& v : o.value) cfg.config_files.push_back(v == kEmpty ? std::string() : v);
    } else if (o.string_key == "__positional") {
      for (auto& v : o.value) cfg.positional.push_back(v);
    } else {
      std::string v = o.value.empty() ? "" : o.value.front();
      if (v == kEmpty) v.clear();
      if (o.value.empty() && schema.spec(o.string_key).type == OptType::Bool) v = "true";  // bare --flag
      overrides.emplace_back(o.string_key, v);
    }
  }
  if (cfg.help) return cfg;
  for (auto& f : cfg.config_files) apply_ini_file(cfg, f);
  for (auto& [k, v] : overrides) cfg.set(k, v, "command line");
  if (cfg.positional.size() < pos.min || cfg.positional.size() > pos.max) {
    if (pos.max == 0)
      throw UsageError(str("unexpected argument '", cfg.positional.front(), "'"));
    throw UsageError(str("expected ", pos.usage.empty() ? std::string("arguments") : pos.usage, ", got ",
                         cfg.positional.size(), " argument(s)"));
  }
  return cfg;
}

}  // namespace shiftlab::core
