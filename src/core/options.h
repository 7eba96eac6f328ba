// Typed, validated configuration: a Schema declares every option once (key, type, default,
// range or choices, one-line doc); a Config holds the final value of every declared key after
// layering defaults < --config files (in order) < --key=value overrides on the command line.
//
// INI files map sections to dotted keys: "[train]\nlr = 1e-3" is the key "train.lr"; keys before
// the first section are top-level ("method = dann"). Unknown keys fail with the nearest known
// key suggested; ill-typed or out-of-range values fail naming the key and what was expected.
// Components never read a Config themselves: each module turns it into its own typed Options
// struct at the app boundary (see e.g. data/options.h).
#pragma once

#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace shiftlab::core {

enum class OptType { Bool, Int, Float, String, Path, Choice, List };

const char* type_name(OptType t);

struct OptionSpec {
  std::string key;
  OptType type = OptType::String;
  std::string default_value;
  std::string doc;
  double min = -std::numeric_limits<double>::infinity();  ///< for Int/Float
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;                         ///< for Choice
  std::function<std::vector<std::string>()> dynamic_choices;  ///< e.g. a registry's names
  bool cli_only = false;  ///< a command flag (e.g. resume), not written to config.resolved.ini
  char short_name = 0;    ///< one-letter command-line alias (-n 2), 0 = none

  OptionSpec& range(double lo, double hi) {
    min = lo;
    max = hi;
    return *this;
  }
  OptionSpec& command_flag() {
    cli_only = true;
    return *this;
  }
  /// A one-letter alias on the command line ("-n 2" for "--nproc=2").
  OptionSpec& alias(char c) {
    short_name = c;
    return *this;
  }
  std::vector<std::string> all_choices() const;
};

/// The set of options one command accepts. Keys are unique; declaration order is kept.
class Schema {
 public:
  OptionSpec& add(OptionSpec spec);
  OptionSpec& add_bool(const std::string& key, bool def, const std::string& doc);
  OptionSpec& add_int(const std::string& key, long long def, const std::string& doc);
  OptionSpec& add_float(const std::string& key, double def, const std::string& doc);
  OptionSpec& add_string(const std::string& key, const std::string& def, const std::string& doc);
  OptionSpec& add_path(const std::string& key, const std::string& def, const std::string& doc);
  OptionSpec& add_list(const std::string& key, const std::string& def, const std::string& doc);
  OptionSpec& add_choice(const std::string& key, const std::string& def,
                         std::vector<std::string> choices, const std::string& doc);
  /// A choice among the names of a registry, read when validated.
  OptionSpec& add_registry_choice(const std::string& key, const std::string& def,
                                  std::function<std::vector<std::string>()> names,
                                  const std::string& doc);

  bool has(const std::string& key) const { return specs_.count(key) > 0; }
  const OptionSpec& spec(const std::string& key) const;
  const std::vector<std::string>& keys() const { return order_; }

  /// Help text: every option with type, default and doc, grouped by section.
  std::string help() const;

 private:
  std::map<std::string, OptionSpec> specs_;
  std::vector<std::string> order_;
};

/// Positional arguments a command takes, for help and count checks.
struct Positionals {
  std::string usage;  ///< e.g. "NAME" or "CACHE [CACHE...]"
  size_t min = 0;
  size_t max = 0;  ///< SIZE_MAX for any number
};

/// The final values of every option in a Schema.
class Config {
 public:
  explicit Config(Schema schema);

  /// Sets a value after validating its type and range (throws UsageError naming the key).
  void set(const std::string& key, const std::string& value, const std::string& origin = "");

  bool get_bool(const std::string& key) const;
  long long get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  /// Comma-separated list, items trimmed, empty items dropped.
  std::vector<std::string> get_list(const std::string& key) const;

  /// True when a file or the command line gave this key (not just its default).
  bool is_set(const std::string& key) const { return explicit_.count(key) > 0; }
  const Schema& schema() const { return schema_; }

  /// The resolved configuration as an INI file that re-runs to the same Config.
  std::string to_ini(const std::string& header = "") const;

  std::vector<std::string> positional;    ///< positional arguments, in order
  std::vector<std::string> config_files;  ///< --config files, in order
  bool help = false;                      ///< --help was given

 private:
  const std::string& raw(const std::string& key) const;
  Schema schema_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> explicit_;  ///< key -> where it was set
};

/// Parses `args` (without program and command name): --config FILE (repeatable), --help,
/// --key=value / --key value, positionals. Throws UsageError on any problem.
Config parse_args(const Schema& schema, const std::vector<std::string>& args,
                  const Positionals& positionals = {});

/// Reads one INI file into `cfg` (later calls win). Throws UsageError naming file and key.
void apply_ini_file(Config& cfg, const std::string& path);
/// The same on INI text already in memory; `origin` names it in errors (for tests and the fuzzer).
void apply_ini_text(Config& cfg, const std::string& text, const std::string& origin);

/// One "key = value" line of INI text: the key with its section prefix ("train.lr"), 1-based line.
struct IniEntry {
  std::string key, value;
  size_t line = 0;
};
/// The entries of INI text in order, with the syntax apply_ini_text reads (no schema check).
/// Throws UsageError naming `origin` and the line of a malformed one.
std::vector<IniEntry> parse_ini_text(const std::string& text, const std::string& origin);

/// Splits "a, b,,c" -> {"a","b","c"}.
std::vector<std::string> split_list(const std::string& s, char sep = ',');
std::string trim(const std::string& s);

}  // namespace shiftlab::core
