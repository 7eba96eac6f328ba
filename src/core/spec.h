// One grammar for shiftlab's small spec strings (in the spirit of faiss' index_factory strings):
//
//   method           dann + 0.1*entropy        cdan+E + 0.1*mcc        0.5*dan + mcc
//   model.adapters   residual@layer3,layer4; lora(r=8,alpha=16)@blocks.*.attn.qkv
//   *.transform      random_resized_crop(224, scale=[0.08, 1]), hflip, normalize(imagenet)
//   optim.group_lr   stem=0.001, layer4=1e-3, head=1e-2
//   sweep --grid     optim.lr=1e-3,3e-3   optim.lr=loguniform(1e-4, 1e-2)   t=resize(20), pad(4)|resize(28)
//
// Tokens (blanks between tokens are ignored):
//   name     [A-Za-z_][A-Za-z0-9_.]*                    dann, random_resized_crop, optim.lr, blocks.0
//   number   -?(digits[.digits] | .digits)([eE][+-]?digits)?     8, 0.1, -10, 1e-3, .5 (kept as written)
//   string   '...' or "..."  (backslash escapes \\ \' \")   for words that are not names
//   glob     [A-Za-z0-9_.*-]+  (only where a module pattern is expected, after '@')   layer4.*.conv*
//   raw      any text up to a separator outside (), [] and quotes (sweep values; a quoted one is unquoted)
//   operators  ( ) [ ] , = + * @ ; |
// Building blocks:
//   value    := number | name | string | '[' [ value ( ',' value )* ] ']'
//   arg      := [ name '=' ] value          positional args come first; a key at most once
//   args     := arg ( ',' arg )*
//   item     := name [ '(' [ args ] ')' ]
// Grammars (each consumer builds its own objects from the parsed pieces and checks their meaning):
//   items    := item ( ',' item )*                                       transform chains
//   sum      := term ( '+' term )* ;  term := [ value '*' ] item          method specs ("+E": a term E)
//   targets  := [ target ] ( ';' [ target ] )* ;  target := item '@' glob ( ',' glob )*   adapters
//   args     (a whole text, possibly empty)                              optim.group_lr
//   axis     := name '=' ( item | raw ( ',' raw )* | raw ( '|' raw )* )  sweep axes (item: a distribution)
//
// Errors are SpecErrors (UsageErrors) whose first line names the option, echoes the text and gives
// the 1-based column of the offending character; two more lines show the text with a caret:
//   method 'dann + 0.1*': expected a method name after '*' at column 12
//     dann + 0.1*
//                ^
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace shiftlab::core {

/// A bad spec: the option (context), the text, the offset of the culprit and what is wrong.
class SpecError : public UsageError {
 public:
  /// what() = "<context> '<text>': <message> at column <col><note>" + caret lines. `note` follows
  /// the column (", found ')'", " — did you mean 'x'? (known: ...)").
  SpecError(const std::string& context, const std::string& text, size_t offset, const std::string& message,
            const std::string& note = "");
  const std::string& context() const { return context_; }
  const std::string& text() const { return text_; }
  const std::string& message() const { return message_; }
  size_t offset() const { return offset_; }
  /// 1-based column in characters (UTF-8 code points) of the offending character.
  size_t column() const;

 private:
  std::string context_, text_, message_;
  size_t offset_;
};

/// One token; `pos` is its byte offset in the text.
struct SpecToken {
  enum Kind { End, Name, Number, String, Op, Glob, Raw, Bad } kind = End;
  std::string text;  ///< as written (String: the unquoted contents; Op / Bad: the character)
  size_t pos = 0;
  size_t len = 0;      ///< bytes in the text
  double number = 0;   ///< Number
  char op = 0;         ///< Op
  /// How an error message shows it: "'x'", or "the end".
  std::string shown() const;
};

/// A value: a number, a name, a string or a list of values.
struct SpecValue {
  enum Kind { Number, Name, String, List } kind = Name;
  std::string text;  ///< Number: as written ("1e-3"); Name; String: unquoted; List: ""
  double number = 0;
  std::vector<SpecValue> items;  ///< List
  size_t pos = 0;

  bool is_number() const { return kind == Number; }
  /// A name or a string (a word-like value).
  bool is_word() const { return kind == Name || kind == String; }
  /// Canonical text: numbers as written, strings quoted when they are not names, "[a, b]".
  std::string str() const;
};
bool operator==(const SpecValue& a, const SpecValue& b);  ///< positions ignored
inline bool operator!=(const SpecValue& a, const SpecValue& b) { return !(a == b); }

/// key=value or a positional value (key empty).
struct SpecArg {
  std::string key;
  size_t key_pos = 0;
  SpecValue value;
  std::string str() const;
};
bool operator==(const SpecArg& a, const SpecArg& b);

/// name or name(args).
struct SpecItem {
  std::string name;
  size_t pos = 0;         ///< of the name
  bool parens = false;    ///< written with "(...)" (possibly empty)
  size_t paren_pos = 0;   ///< of '(' when parens
  std::vector<SpecArg> args;
  /// The argument with this key, or null.
  const SpecArg* find(const std::string& key) const;
  /// "name" or "name(a, k=v)".
  std::string str() const;
};
bool operator==(const SpecItem& a, const SpecItem& b);

/// [weight '*'] item.
struct SpecTerm {
  std::optional<SpecValue> weight;
  SpecItem item;
  std::string str() const;  ///< "0.1*entropy"
};
bool operator==(const SpecTerm& a, const SpecTerm& b);

/// item '@' glob (',' glob)*.
struct SpecTarget {
  SpecItem item;
  std::vector<SpecToken> globs;
  std::string str() const;  ///< "lora(r=8)@layer3,layer4"
};
bool operator==(const SpecTarget& a, const SpecTarget& b);

/// Recursive-descent parser over one spec text, lexing on demand (so a glob or raw token is read
/// only where the grammar expects one). Every error is a SpecError naming `context`.
class SpecParser {
 public:
  SpecParser(std::string context, std::string text);
  const std::string& context() const { return context_; }
  const std::string& text() const { return text_; }

  /// The next token (not consumed); names, numbers, strings, operators.
  SpecToken peek();
  SpecToken next();
  bool at_end() { return peek().kind == SpecToken::End; }
  /// Consumes operator `op` when it is next.
  bool accept(char op);
  /// Consumes operator `op` or fails with "expected <what>".
  void expect(char op, const std::string& what);
  /// Fails unless the text is consumed ("expected <what>").
  void expect_end(const std::string& what);
  /// A name token, or fails with "expected <what>".
  SpecToken name(const std::string& what);
  SpecValue value(const std::string& what = "a value");
  /// arg (',' arg)* up to `close` (not consumed; 0 = the end of the text). Positional args after a
  /// keyword one and repeated keys are errors.
  std::vector<SpecArg> args(char close, const std::string& what = "an argument");
  SpecItem item(const std::string& what);
  /// A glob token (module pattern), or fails with "expected <what>".
  SpecToken glob(const std::string& what);
  /// Raw text up to the next `stops` character outside (), [] and quotes; trimmed; a text that is
  /// one quoted string is unquoted (kind String, else Raw). Empty: kind End.
  SpecToken raw(const std::string& stops);
  /// True when `c` occurs outside (), [] and quotes from the current position on.
  bool has_top_level(char c) const;

  /// Throws SpecError at byte offset `pos`.
  [[noreturn]] void fail(size_t pos, const std::string& message, const std::string& note = "") const;
  /// "expected <what> after '<previous token>'" at the next token (", found '<it>'").
  [[noreturn]] void fail_expected(const std::string& what);
  /// "unknown <kind> '<name>'" with the nearest known name and the list of known names.
  [[noreturn]] void fail_unknown(const std::string& kind, const SpecToken& name, const std::vector<std::string>& known) const;
  [[noreturn]] void fail_unknown(const std::string& kind, const std::string& name, size_t pos,
                                 const std::vector<std::string>& known) const;

 private:
  void skip_blanks();
  SpecToken lex();
  void consume(const SpecToken& t);
  [[noreturn]] void fail_unclosed(char open, size_t open_pos, const std::string& what);

  std::string context_, text_;
  size_t pos_ = 0;
  std::string prev_;  ///< text of the last consumed token (for "after '...'")
};

// ---------------------------------------------------------------- whole-text grammars
// Each parses the complete text (trailing text is an error); what_* name the expected pieces in
// error messages ("a transform name", "a module pattern").

/// items := item (',' item)*   (an empty / blank text: no items)
std::vector<SpecItem> parse_spec_items(SpecParser& p, const std::string& what_item);
/// sum := term ('+' term)*   (empty: no terms)
std::vector<SpecTerm> parse_spec_sum(SpecParser& p, const std::string& what_item);
/// targets := [target] (';' [target])*   (empty specs between ';' are skipped)
std::vector<SpecTarget> parse_spec_targets(SpecParser& p, const std::string& what_item, const std::string& what_glob);
/// args (the whole text; empty: none)
std::vector<SpecArg> parse_spec_args(SpecParser& p);

/// Canonical texts: items joined by ", ", terms by " + ", targets by "; ", args by ", ".
std::string format_spec_items(const std::vector<SpecItem>& v);
std::string format_spec_sum(const std::vector<SpecTerm>& v);
std::string format_spec_targets(const std::vector<SpecTarget>& v);
std::string format_spec_args(const std::vector<SpecArg>& v);

}  // namespace shiftlab::core
