// Typed, validated configuration: a Schema declares every option once (key, type, default,
// range or choices, one-line doc); a Config holds the final value of every declared key after
// layering defaults < --config files (in order) < --key=value overrides on the command line.
//
// INI files map sections to dotted keys: "[train]\nlr = 1e-3" is the key "train.lr"; keys before
// the first section are top-level ("method = dann"). Unknown keys fail with the nearest known
// key suggested; ill-typed or out-of-range values fail naming the key and what was expected.
// Components never read a Config themselves: each module turns it into its own typed Options
// struct at the app boundary (see e.g. data/options.h).
//
// Each Options struct declares its keys once, in an OptionTable beside it (key, member, doc,
// range / choices; the default is the struct's member initialiser, or a given defaults instance):
// the Schema entries (--help, config.resolved.ini) and the reading Config -> struct both come
// from that one table.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
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

class Config;

/// One OptionTable declared into a Schema under one prefix with one defaults instance (recorded by
/// OptionTable::declare), so that tests can check every key of every table reads into its member
/// and back (tests/test_core_options.cpp).
class OptionBinding {
 public:
  virtual ~OptionBinding() = default;
  virtual const std::string& table_name() const = 0;
  virtual const std::string& prefix() const = 0;
  /// The full keys, in declaration order.
  virtual std::vector<std::string> keys() const = 0;
  /// The keys whose members differ between the struct read from `a` and the one read from `b`
  /// (b == nullptr: the defaults instance the table was declared with).
  virtual std::vector<std::string> differences(const Config& a, const Config* b) const = 0;
  /// Reads the struct from `from` and writes all its keys into `to`.
  virtual void write_back(const Config& from, Config& to) const = 0;
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

  /// The option tables declared into this schema (see OptionTable::declare).
  void bind(std::shared_ptr<const OptionBinding> b) { bindings_.push_back(std::move(b)); }
  const std::vector<std::shared_ptr<const OptionBinding>>& bindings() const { return bindings_; }

 private:
  std::map<std::string, OptionSpec> specs_;
  std::vector<std::string> order_;
  std::vector<std::shared_ptr<const OptionBinding>> bindings_;
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
/// The shortest text ("0.001", "1e-08", "0.1") that reads back as exactly `v`.
std::string format_number(double v);

// ---------------------------------------------------------------- option tables

/// How a member type is read from and written to its option value (bool; integers; double;
/// std::string; lists of strings, numbers or integers). Numeric list items are checked against the
/// key's range. Other types: OptionTable::field_as with explicit parse / format functions.
template <class M, class Enable = void>
struct OptionValue;

namespace detail {
[[noreturn]] void throw_option_error(const std::string& key, const std::string& what);
long long parse_option_int(const std::string& key, const std::string& item, const OptionSpec& spec);
double parse_option_float(const std::string& key, const std::string& item, const OptionSpec& spec);
std::string join_list(const std::vector<std::string>& items);
}  // namespace detail

template <>
struct OptionValue<bool> {
  static constexpr OptType type = OptType::Bool;
  static std::string format(bool v) { return v ? "true" : "false"; }
  static bool read(const Config& c, const std::string& key, const OptionSpec& spec);
};

template <class M>
struct OptionValue<M, std::enable_if_t<std::is_integral_v<M> && !std::is_same_v<M, bool>>> {
  static constexpr OptType type = OptType::Int;
  static std::string format(M v) { return std::to_string(v); }
  static M read(const Config& c, const std::string& key, const OptionSpec& spec);
};

template <>
struct OptionValue<double> {
  static constexpr OptType type = OptType::Float;
  static std::string format(double v) { return format_number(v); }
  static double read(const Config& c, const std::string& key, const OptionSpec& spec);
};

template <>
struct OptionValue<std::string> {
  static constexpr OptType type = OptType::String;
  static std::string format(const std::string& v) { return v; }
  static std::string read(const Config& c, const std::string& key, const OptionSpec& spec);
};

template <>
struct OptionValue<std::vector<std::string>> {
  static constexpr OptType type = OptType::List;
  static std::string format(const std::vector<std::string>& v) { return detail::join_list(v); }
  static std::vector<std::string> read(const Config& c, const std::string& key, const OptionSpec& spec);
};

template <>
struct OptionValue<std::vector<double>> {
  static constexpr OptType type = OptType::List;
  static std::string format(const std::vector<double>& v);
  static std::vector<double> read(const Config& c, const std::string& key, const OptionSpec& spec);
};

template <>
struct OptionValue<std::vector<int64_t>> {
  static constexpr OptType type = OptType::List;
  static std::string format(const std::vector<int64_t>& v);
  static std::vector<int64_t> read(const Config& c, const std::string& key, const OptionSpec& spec);
};

/// One key of an OptionTable<T>: its spec (key relative to the table's prefix, no default) and
/// how its member is read, written and compared.
template <class T>
class OptionFieldBase {
 public:
  virtual ~OptionFieldBase() = default;
  const OptionSpec& spec() const { return spec_; }
  virtual std::string format(const T& t) const = 0;
  virtual void read(const Config& c, const std::string& key, T& t) const = 0;
  virtual bool same(const T& a, const T& b) const = 0;

 protected:
  OptionSpec spec_;
};

/// A key bound to a member of type M; the builder methods refine its spec.
template <class T, class M>
class OptionField : public OptionFieldBase<T> {
 public:
  using Access = std::function<M&(T&)>;
  using Parse = std::function<M(const Config&, const std::string& key, const OptionSpec&)>;
  using Format = std::function<std::string(const M&)>;

  OptionField(std::string key, OptType type, std::string doc, Access access, Parse parse, Format format)
      : access_(std::move(access)), parse_(std::move(parse)), format_(std::move(format)) {
    this->spec_.key = std::move(key);
    this->spec_.type = type;
    this->spec_.doc = std::move(doc);
  }

  /// Allowed range (integers, numbers, items of numeric lists).
  OptionField& range(double lo, double hi) {
    this->spec_.range(lo, hi);
    return *this;
  }
  /// A command flag (not written to config.resolved.ini, not accepted in config files).
  OptionField& command_flag() {
    this->spec_.command_flag();
    return *this;
  }
  /// A one-letter alias on the command line.
  OptionField& alias(char c) {
    this->spec_.alias(c);
    return *this;
  }
  /// A string that names a file or directory (type "path" in the help).
  OptionField& path() {
    static_assert(std::is_same_v<M, std::string>, "path(): a std::string member");
    this->spec_.type = OptType::Path;
    return *this;
  }
  /// A string that must be one of `choices`.
  OptionField& choices(std::vector<std::string> choices) {
    static_assert(std::is_same_v<M, std::string>, "choices(): a std::string member");
    this->spec_.type = OptType::Choice;
    this->spec_.choices = std::move(choices);
    return *this;
  }
  /// A string that must be one of the names `names()` returns when validated (e.g. a registry's).
  OptionField& choices_from(std::function<std::vector<std::string>()> names) {
    static_assert(std::is_same_v<M, std::string>, "choices_from(): a std::string member");
    this->spec_.type = OptType::Choice;
    this->spec_.dynamic_choices = std::move(names);
    return *this;
  }
  /// A check of the value read (throw UsageError naming `key`); it may also normalise the value.
  OptionField& check(std::function<void(M& value, const std::string& key)> fn) {
    checks_.push_back(std::move(fn));
    return *this;
  }

  std::string format(const T& t) const override { return format_(access_(const_cast<T&>(t))); }
  void read(const Config& c, const std::string& key, T& t) const override {
    M v = parse_(c, key, this->spec_);
    for (auto& fn : checks_) fn(v, key);
    access_(t) = std::move(v);
  }
  bool same(const T& a, const T& b) const override {
    return access_(const_cast<T&>(a)) == access_(const_cast<T&>(b));
  }

 private:
  Access access_;
  Parse parse_;
  Format format_;
  std::vector<std::function<void(M&, const std::string&)>> checks_;
};

/// The keys of an options struct T, each declared once: key, member, doc, range or choices; the
/// default is the member's value in the defaults instance given to declare() (T{} unless a module
/// declares the same keys under several prefixes with different defaults, e.g. data.source and
/// data.target). Usage, beside the struct:
///
///   const core::OptionTable<TrainOptions>& train_option_table() {
///     static const auto t = [] {
///       core::OptionTable<TrainOptions> t("train::TrainOptions");
///       t.field("train.steps", &TrainOptions::steps, "optimisation steps").range(0, 1e12);
///       t.field("train.amp", &TrainOptions::amp, "CUDA autocast precision").choices({"none", "bf16", "fp16"});
///       return t;
///     }();
///     return t;
///   }
///
/// A member may also be reached by a function (nested structs): [](T& o) -> auto& { return o.a.b; }.
template <class T>
class OptionTable {
  template <class A>
  using member_of = std::remove_cv_t<std::remove_reference_t<std::invoke_result_t<A, T&>>>;

 public:
  explicit OptionTable(std::string name) : impl_(std::make_shared<Impl>()) { impl_->name = std::move(name); }

  /// A key bound to a member (a pointer to member, or a function T& -> M&) of a type OptionValue knows.
  template <class A>
  OptionField<T, member_of<A>>& field(const std::string& key, A access, std::string doc) {
    using M = member_of<A>;
    return add(std::make_unique<OptionField<T, M>>(
        key, OptionValue<M>::type, std::move(doc), [access](T& t) -> M& { return std::invoke(access, t); },
        [](const Config& c, const std::string& k, const OptionSpec& s) { return OptionValue<M>::read(c, k, s); },
        [](const M& v) { return OptionValue<M>::format(v); }));
  }
  /// A key bound to a member of any type with an operator==, with its own text form:
  /// `parse(text, key)` (throws UsageError naming key) and `format(value)`, parse(format(v)) == v.
  template <class A>
  OptionField<T, member_of<A>>& field_as(const std::string& key, A access, OptType type,
                                         std::function<member_of<A>(const std::string&, const std::string&)> parse,
                                         std::function<std::string(const member_of<A>&)> format, std::string doc) {
    using M = member_of<A>;
    return add(std::make_unique<OptionField<T, M>>(
        key, type, std::move(doc), [access](T& t) -> M& { return std::invoke(access, t); },
        [parse](const Config& c, const std::string& k, const OptionSpec& s) {
          return parse(OptionValue<std::string>::read(c, k, s), k);
        },
        std::move(format)));
  }
  /// Runs after every key was read (cross-key checks, members derived from keys).
  OptionTable& on_read(std::function<void(T&)> fn) {
    impl_->after.push_back(std::move(fn));
    return *this;
  }

  /// Adds every key under `prefix` ("" or e.g. "data.source") with the values of `defaults` as
  /// defaults, and records the binding in the schema.
  void declare(Schema& s, const std::string& prefix = "", const T& defaults = T{}) const {
    for (auto& f : impl_->fields) {
      OptionSpec spec = f->spec();
      spec.key = join(prefix, spec.key);
      spec.default_value = f->format(defaults);
      s.add(std::move(spec));
    }
    s.bind(std::make_shared<Binding>(impl_, prefix, defaults));
  }
  /// The struct from the values of `c` (keys under `prefix`).
  T read(const Config& c, const std::string& prefix = "") const { return impl_->read(c, prefix); }
  /// Sets every key of `v` in `c` (the inverse of read).
  void write(const T& v, Config& c, const std::string& prefix = "") const { impl_->write(v, c, prefix); }
  /// The full keys under `prefix`, in declaration order.
  std::vector<std::string> keys(const std::string& prefix = "") const { return impl_->keys(prefix); }
  const std::string& name() const { return impl_->name; }

 private:
  static std::string join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  }
  struct Impl {
    std::string name;
    std::vector<std::unique_ptr<OptionFieldBase<T>>> fields;
    std::vector<std::function<void(T&)>> after;

    T read(const Config& c, const std::string& prefix) const {
      T t{};
      for (auto& f : fields) f->read(c, join(prefix, f->spec().key), t);
      for (auto& fn : after) fn(t);
      return t;
    }
    void write(const T& v, Config& c, const std::string& prefix) const;
    std::vector<std::string> keys(const std::string& prefix) const {
      std::vector<std::string> k;
      for (auto& f : fields) k.push_back(join(prefix, f->spec().key));
      return k;
    }
  };
  class Binding : public OptionBinding {
   public:
    Binding(std::shared_ptr<const Impl> impl, std::string prefix, T defaults)
        : impl_(std::move(impl)), prefix_(std::move(prefix)), defaults_(std::move(defaults)) {}
    const std::string& table_name() const override { return impl_->name; }
    const std::string& prefix() const override { return prefix_; }
    std::vector<std::string> keys() const override { return impl_->keys(prefix_); }
    std::vector<std::string> differences(const Config& a, const Config* b) const override {
      T x = impl_->read(a, prefix_);
      T y = b ? impl_->read(*b, prefix_) : defaults_;
      std::vector<std::string> out;
      for (auto& f : impl_->fields)
        if (!f->same(x, y)) out.push_back(join(prefix_, f->spec().key));
      return out;
    }
    void write_back(const Config& from, Config& to) const override {
      impl_->write(impl_->read(from, prefix_), to, prefix_);
    }

   private:
    std::shared_ptr<const Impl> impl_;
    std::string prefix_;
    T defaults_;
  };
  template <class F>
  F& add(std::unique_ptr<F> f) {
    F& ref = *f;
    impl_->fields.push_back(std::move(f));
    return ref;
  }

  std::shared_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- OptionTable, out of line
// (after Config: write() needs its definition)

template <class T>
void OptionTable<T>::Impl::write(const T& v, Config& c, const std::string& prefix) const {
  for (auto& f : fields) c.set(join(prefix, f->spec().key), f->format(v), "written");
}

template <class M>
M OptionValue<M, std::enable_if_t<std::is_integral_v<M> && !std::is_same_v<M, bool>>>::read(
    const Config& c, const std::string& key, const OptionSpec& spec) {
  const long long v = detail::parse_option_int(key, c.get_string(key), spec);
  if constexpr (std::is_unsigned_v<M>) {
    if (v < 0 || static_cast<unsigned long long>(v) > std::numeric_limits<M>::max())
      detail::throw_option_error(key, "'" + std::to_string(v) + "' does not fit its type");
  } else {
    if (v < static_cast<long long>(std::numeric_limits<M>::min()) ||
        v > static_cast<long long>(std::numeric_limits<M>::max()))
      detail::throw_option_error(key, "'" + std::to_string(v) + "' does not fit its type");
  }
  return static_cast<M>(v);
}

}  // namespace shiftlab::core
