#include "core/spec.h"

#include <cctype>
#include <cstdlib>

#include "core/registry.h"

namespace shiftlab::core {

namespace {

bool spec_is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool spec_is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }
bool spec_is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool spec_is_glob_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '*' || c == '-';
}
bool spec_is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool spec_is_op(char c) {
  switch (c) {
    case '(': case ')': case '[': case ']': case ',': case '=': case '+': case '*': case '@': case ';': case '|':
      return true;
    default:
      return false;
  }
}

/// 1-based column (UTF-8 code points) of byte offset `pos`.
size_t spec_column(const std::string& text, size_t pos) {
  size_t col = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i)
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++col;
  return col + (pos > text.size() ? pos - text.size() : 0);
}

bool spec_blank(const std::string& s) {
  for (char c : s)
    if (!spec_is_blank(c)) return false;
  return true;
}

std::string spec_render(const std::string& context, const std::string& text, size_t offset, const std::string& message,
                        const std::string& note) {
  if (spec_blank(text)) return str(context, ": ", message, note);
  size_t col = spec_column(text, offset);
  std::string shown = text;
  for (auto& c : shown)
    if (spec_is_blank(c)) c = ' ';
  return str(context, " '", text, "': ", message, " at column ", col, note, "\n  ", shown, "\n  ",
             std::string(col - 1, ' '), "^");
}

std::string spec_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\\' || c == '\'') q += '\\';
    q += c;
  }
  return q + "'";
}

template <typename T>
std::string spec_join(const std::vector<T>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i].str();
  return s;
}

}  // namespace

// ---------------------------------------------------------------- errors

SpecError::SpecError(const std::string& context, const std::string& text, size_t offset, const std::string& message,
                     const std::string& note)
    : UsageError(spec_render(context, text, offset, message, note)),
      context_(context),
      text_(text),
      message_(message),
      offset_(offset) {}

size_t SpecError::column() const { return spec_column(text_, offset_); }

std::string SpecToken::shown() const { return kind == End ? "the end" : "'" + text + "'"; }

// ---------------------------------------------------------------- values and printing

std::string SpecValue::str() const {
  switch (kind) {
    case Number:
    case Name:
      return text;
    case String:
      return spec_quote(text);
    case List:
      return "[" + spec_join(items, ", ") + "]";
  }
  return text;
}

bool operator==(const SpecValue& a, const SpecValue& b) {
  return a.kind == b.kind && a.text == b.text && a.items == b.items;
}

std::string SpecArg::str() const { return key.empty() ? value.str() : key + "=" + value.str(); }
bool operator==(const SpecArg& a, const SpecArg& b) { return a.key == b.key && a.value == b.value; }

const SpecArg* SpecItem::find(const std::string& key) const {
  for (auto& a : args)
    if (a.key == key) return &a;
  return nullptr;
}

std::string SpecItem::str() const { return parens ? name + "(" + spec_join(args, ", ") + ")" : name; }
bool operator==(const SpecItem& a, const SpecItem& b) {
  return a.name == b.name && a.parens == b.parens && a.args == b.args;
}

std::string SpecTerm::str() const { return weight ? weight->str() + "*" + item.str() : item.str(); }
bool operator==(const SpecTerm& a, const SpecTerm& b) { return a.weight == b.weight && a.item == b.item; }

std::string SpecTarget::str() const {
  std::string s = item.str() + "@";
  for (size_t i = 0; i < globs.size(); ++i) s += (i ? "," : "") + globs[i].text;
  return s;
}
bool operator==(const SpecTarget& a, const SpecTarget& b) {
  if (!(a.item == b.item) || a.globs.size() != b.globs.size()) return false;
  for (size_t i = 0; i < a.globs.size(); ++i)
    if (a.globs[i].text != b.globs[i].text) return false;
  return true;
}

std::string format_spec_items(const std::vector<SpecItem>& v) { return spec_join(v, ", "); }
std::string format_spec_sum(const std::vector<SpecTerm>& v) { return spec_join(v, " + "); }
std::string format_spec_targets(const std::vector<SpecTarget>& v) { return spec_join(v, "; "); }
std::string format_spec_args(const std::vector<SpecArg>& v) { return spec_join(v, ", "); }

// ---------------------------------------------------------------- lexer

SpecParser::SpecParser(std::string context, std::string text) : context_(std::move(context)), text_(std::move(text)) {}

void SpecParser::fail(size_t pos, const std::string& message, const std::string& note) const {
  throw SpecError(context_, text_, pos, message, note);
}

void SpecParser::skip_blanks() {
  while (pos_ < text_.size() && spec_is_blank(text_[pos_])) ++pos_;
}

SpecToken SpecParser::lex() {
  skip_blanks();
  SpecToken t;
  t.pos = pos_;
  const size_t n = text_.size();
  if (pos_ >= n) return t;  // End
  size_t i = pos_;
  char c = text_[i];
  auto digit_at = [&](size_t k) { return k < n && spec_is_digit(text_[k]); };
  if (spec_is_name_start(c)) {
    while (i < n && spec_is_name_char(text_[i])) ++i;
    t.kind = SpecToken::Name;
  } else if (spec_is_digit(c) || (c == '.' && digit_at(i + 1)) ||
             (c == '-' && (digit_at(i + 1) || (i + 2 < n && text_[i + 1] == '.' && digit_at(i + 2))))) {
    if (c == '-') ++i;
    while (digit_at(i)) ++i;
    if (i < n && text_[i] == '.') {
      ++i;
      while (digit_at(i)) ++i;
    }
    if (i < n && (text_[i] == 'e' || text_[i] == 'E')) {
      size_t k = i + 1;
      if (k < n && (text_[k] == '+' || text_[k] == '-')) ++k;
      if (digit_at(k)) {
        i = k;
        while (digit_at(i)) ++i;
      }
    }
    t.kind = SpecToken::Number;
    if (i < n && spec_is_name_char(text_[i])) {  // "4x", "1.2.3": one bad token
      while (i < n && spec_is_name_char(text_[i])) ++i;
      t.kind = SpecToken::Bad;
    }
  } else if (c == '\'' || c == '"') {
    std::string s;
    ++i;
    while (i < n && text_[i] != c) {
      if (text_[i] == '\\' && i + 1 < n) ++i;
      s += text_[i++];
    }
    if (i >= n) fail(pos_, str("unterminated string (no closing ", c, ")"));
    ++i;
    t.kind = SpecToken::String;
    t.len = i - pos_;
    t.text = s;
    return t;
  } else if (spec_is_op(c)) {
    ++i;
    t.kind = SpecToken::Op;
    t.op = c;
  } else {
    ++i;
    while (i < n && (static_cast<unsigned char>(text_[i]) & 0xC0) == 0x80) ++i;  // one UTF-8 character
    t.kind = SpecToken::Bad;
  }
  t.len = i - pos_;
  t.text = text_.substr(pos_, t.len);
  if (t.kind == SpecToken::Number) t.number = std::strtod(t.text.c_str(), nullptr);
  return t;
}

SpecToken SpecParser::peek() {
  size_t save = pos_;
  SpecToken t = lex();
  pos_ = save;
  return t;
}

void SpecParser::consume(const SpecToken& t) {
  pos_ = t.pos + t.len;
  prev_ = text_.substr(t.pos, t.len);
}

SpecToken SpecParser::next() {
  SpecToken t = lex();
  consume(t);
  return t;
}

bool SpecParser::accept(char op) {
  SpecToken t = peek();
  if (t.kind != SpecToken::Op || t.op != op) return false;
  consume(t);
  return true;
}

void SpecParser::expect(char op, const std::string& what) {
  if (!accept(op)) fail_expected(what);
}

void SpecParser::expect_end(const std::string& what) {
  if (!at_end()) fail_expected(what);
}

void SpecParser::fail_expected(const std::string& what) {
  SpecToken t = peek();
  fail(t.pos, str("expected ", what, prev_.empty() ? "" : str(" after '", prev_, "'")),
       t.kind == SpecToken::End ? std::string() : ", found " + t.shown());
}

void SpecParser::fail_unclosed(char open, size_t open_pos, const std::string& what) {
  SpecToken t = peek();
  fail(t.pos, str("expected ", what, " after '", prev_, "'"),
       str(t.kind == SpecToken::End ? std::string() : ", found " + t.shown(), " (unbalanced '", open, "' at column ",
           spec_column(text_, open_pos), ")"));
}

void SpecParser::fail_unknown(const std::string& kind, const std::string& name, size_t pos,
                              const std::vector<std::string>& known) const {
  std::string hint = nearest(name, known), list;
  for (auto& k : known) list += (list.empty() ? "" : ", ") + k;
  fail(pos, str("unknown ", kind, " '", name, "'"),
       str(hint.empty() ? "" : str(" — did you mean '", hint, "'?"), " (known: ", list, ")"));
}

void SpecParser::fail_unknown(const std::string& kind, const SpecToken& name, const std::vector<std::string>& known) const {
  fail_unknown(kind, name.text, name.pos, known);
}

// ---------------------------------------------------------------- building blocks

SpecToken SpecParser::name(const std::string& what) {
  SpecToken t = peek();
  if (t.kind != SpecToken::Name) fail_expected(what);
  consume(t);
  return t;
}

SpecValue SpecParser::value(const std::string& what) {
  SpecToken t = peek();
  SpecValue v;
  v.pos = t.pos;
  switch (t.kind) {
    case SpecToken::Number:
      v.kind = SpecValue::Number;
      v.number = t.number;
      v.text = t.text;
      consume(t);
      return v;
    case SpecToken::Name:
    case SpecToken::String:
      v.kind = t.kind == SpecToken::Name ? SpecValue::Name : SpecValue::String;
      v.text = t.text;
      consume(t);
      return v;
    case SpecToken::Op:
      if (t.op == '[') {
        consume(t);
        v.kind = SpecValue::List;
        if (accept(']')) return v;
        while (true) {
          v.items.push_back(value("a list element"));
          if (accept(',')) continue;
          if (accept(']')) return v;
          fail_unclosed('[', t.pos, "',' or ']'");
        }
      }
      break;
    default:
      break;
  }
  fail_expected(what);
}

std::vector<SpecArg> SpecParser::args(char close, const std::string& what) {
  std::vector<SpecArg> out;
  size_t open_pos = pos_ > 0 ? pos_ - 1 : 0;  // the '(' just consumed, when close != 0
  auto at_close = [&] {
    SpecToken t = peek();
    return close == 0 ? t.kind == SpecToken::End : (t.kind == SpecToken::Op && t.op == close);
  };
  if (at_close()) return out;
  bool keyword = false;
  while (true) {
    SpecArg a;
    SpecToken t = peek();
    if (t.kind == SpecToken::Name) {  // key '=' ?
      size_t save = pos_;
      std::string save_prev = prev_;
      consume(t);
      if (accept('=')) {
        a.key = t.text;
        a.key_pos = t.pos;
      } else {
        pos_ = save;
        prev_ = save_prev;
      }
    }
    a.value = value(a.key.empty() ? what : "a value");
    if (a.key.empty() && keyword) fail(a.value.pos, "positional argument after key=value");
    if (!a.key.empty()) {
      for (auto& b : out)
        if (b.key == a.key) fail(a.key_pos, str("argument '", a.key, "' given twice"));
      keyword = true;
    }
    out.push_back(std::move(a));
    if (accept(',')) continue;
    if (at_close()) return out;
    if (close == 0) fail_expected("',' or the end");
    fail_unclosed('(', open_pos, str("',' or '", close, "'"));
  }
}

SpecItem SpecParser::item(const std::string& what) {
  SpecToken t = name(what);
  SpecItem it;
  it.name = t.text;
  it.pos = t.pos;
  SpecToken open = peek();
  if (open.kind == SpecToken::Op && open.op == '(') {
    consume(open);
    it.parens = true;
    it.paren_pos = open.pos;
    it.args = args(')');
    expect(')', "')'");
  }
  return it;
}

SpecToken SpecParser::glob(const std::string& what) {
  skip_blanks();
  size_t i = pos_;
  while (i < text_.size() && spec_is_glob_char(text_[i])) ++i;
  if (i == pos_) fail_expected(what);
  SpecToken t;
  t.kind = SpecToken::Glob;
  t.pos = pos_;
  t.len = i - pos_;
  t.text = text_.substr(pos_, t.len);
  consume(t);
  return t;
}

namespace {
/// Scans from `i` to the first `stops` character at depth 0 outside quotes (or the end); returns
/// its offset. `fail_at(pos, message)` reports unbalanced brackets / quotes.
template <typename Fail>
size_t spec_scan(const std::string& s, size_t i, const std::string& stops, Fail fail_at) {
  std::vector<std::pair<char, size_t>> open;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\'' || c == '"') {
      size_t start = i++;
      while (i < s.size() && s[i] != c) i += (s[i] == '\\' && i + 1 < s.size()) ? 2 : 1;
      if (i >= s.size()) fail_at(start, str("unterminated string (no closing ", c, ")"));
      ++i;
      continue;
    }
    if (open.empty() && stops.find(c) != std::string::npos) return i;
    if (c == '(' || c == '[') open.emplace_back(c, i);
    if (c == ')' || c == ']') {
      char want = c == ')' ? '(' : '[';
      if (open.empty() || open.back().first != want) fail_at(i, str("unbalanced '", c, "'"));
      open.pop_back();
    }
    ++i;
  }
  if (!open.empty()) fail_at(open.back().second, str("unbalanced '", open.back().first, "'"));
  return i;
}
}  // namespace

bool SpecParser::has_top_level(char c) const {
  size_t i = spec_scan(text_, pos_, std::string(1, c), [](size_t, const std::string&) {});  // raw() reports
  return i < text_.size() && text_[i] == c;
}

SpecToken SpecParser::raw(const std::string& stops) {
  skip_blanks();
  size_t end = spec_scan(text_, pos_, stops, [&](size_t p, const std::string& m) { fail(p, m); });
  size_t e = end;
  while (e > pos_ && spec_is_blank(text_[e - 1])) --e;
  SpecToken t;
  t.pos = pos_;
  t.len = e - pos_;
  t.text = text_.substr(pos_, t.len);
  t.kind = t.len == 0 ? SpecToken::End : SpecToken::Raw;
  if (t.len > 0 && (t.text[0] == '\'' || t.text[0] == '"')) {
    SpecParser q(context_, t.text);  // one quoted string: unquoted
    SpecToken s = q.lex();
    if (s.kind == SpecToken::String && s.len == t.len) {
      t.kind = SpecToken::String;
      t.text = s.text;
    }
  }
  pos_ = end;
  if (t.len > 0) prev_ = text_.substr(t.pos, t.len);
  return t;
}

// ---------------------------------------------------------------- whole-text grammars

std::vector<SpecItem> parse_spec_items(SpecParser& p, const std::string& what_item) {
  std::vector<SpecItem> out;
  if (p.at_end()) return out;
  while (true) {
    out.push_back(p.item(what_item));
    if (p.accept(',')) continue;
    if (p.at_end()) return out;
    p.fail_expected("',' or the end");
  }
}

std::vector<SpecTerm> parse_spec_sum(SpecParser& p, const std::string& what_item) {
  std::vector<SpecTerm> out;
  if (p.at_end()) return out;
  while (true) {
    SpecTerm term;
    SpecToken t = p.peek();
    bool weighted = t.kind == SpecToken::Number || t.kind == SpecToken::String || (t.kind == SpecToken::Op && t.op == '[');
    if (t.kind == SpecToken::Name) {  // a name followed by '*' is a (bad) weight
      SpecParser look(p);
      look.next();
      weighted = look.accept('*');
    }
    if (weighted) {
      term.weight = p.value("a weight");
      p.expect('*', "'*'");
    }
    term.item = p.item(what_item);
    out.push_back(std::move(term));
    if (p.accept('+')) continue;
    if (p.at_end()) return out;
    p.fail_expected("'+' or the end");
  }
}

std::vector<SpecTarget> parse_spec_targets(SpecParser& p, const std::string& what_item, const std::string& what_glob) {
  std::vector<SpecTarget> out;
  while (true) {
    if (p.accept(';')) continue;
    if (p.at_end()) return out;
    SpecTarget t;
    t.item = p.item(what_item);
    if (!p.accept('@')) p.fail_expected("'@' and " + what_glob);
    t.globs.push_back(p.glob(what_glob));
    while (p.accept(',')) t.globs.push_back(p.glob(what_glob));
    out.push_back(std::move(t));
    if (p.at_end()) return out;
    SpecToken n = p.peek();
    if (n.kind == SpecToken::Op && n.op == '@')
      p.fail(n.pos, "expected ',', ';' or the end after '" + out.back().globs.back().text + "'",
             ", found '@' (more than one '@' in a spec; separate specs with ';')");
    if (!p.accept(';')) p.fail_expected("',', ';' or the end");
  }
}

std::vector<SpecArg> parse_spec_args(SpecParser& p) {
  auto v = p.args(0);
  p.expect_end("',' or the end");
  return v;
}

}  // namespace shiftlab::core
