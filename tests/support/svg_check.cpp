#include "support/svg_check.h"

#include <cctype>
#include <set>
#include <vector>

namespace shiftlab::testutil {

namespace {

bool svg_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool svg_name_char(char c) {
  return svg_name_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.';
}
bool svg_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/// The entity starting at s[p] == '&' is valid; returns the index after its ';' (npos if not).
size_t svg_entity_end(const std::string& s, size_t p) {
  size_t e = s.find(';', p);
  if (e == std::string::npos || e - p > 12) return std::string::npos;
  std::string name = s.substr(p + 1, e - p - 1);
  static const std::set<std::string> named{"amp", "lt", "gt", "quot", "apos"};
  if (named.count(name)) return e + 1;
  if (name.size() >= 2 && name[0] == '#') {
    bool hex = name[1] == 'x';
    std::string digits = name.substr(hex ? 2 : 1);
    if (digits.empty()) return std::string::npos;
    for (char c : digits)
      if (!(hex ? std::isxdigit(static_cast<unsigned char>(c)) : std::isdigit(static_cast<unsigned char>(c))))
        return std::string::npos;
    return e + 1;
  }
  return std::string::npos;
}

}  // namespace

bool svg_well_formed(const std::string& s, std::string* why) {
  auto bad = [&](size_t at, const std::string& what) {
    *why = what + " at byte " + std::to_string(at);
    return false;
  };
  std::vector<std::string> stack;
  size_t roots = 0;
  size_t p = 0;
  while (p < s.size()) {
    if (s[p] != '<') {
      // character data
      if (s[p] == '&') {
        size_t e = svg_entity_end(s, p);
        if (e == std::string::npos) return bad(p, "unescaped '&' or unknown entity");
        p = e;
        continue;
      }
      if (stack.empty() && !svg_space(s[p])) return bad(p, "text outside the root element");
      ++p;
      continue;
    }
    if (s.compare(p, 4, "<!--") == 0) {
      size_t e = s.find("-->", p + 4);
      if (e == std::string::npos) return bad(p, "unterminated comment");
      p = e + 3;
      continue;
    }
    if (s.compare(p, 2, "<?") == 0) {
      if (roots > 0 || !stack.empty()) return bad(p, "processing instruction after the root started");
      size_t e = s.find("?>", p + 2);
      if (e == std::string::npos) return bad(p, "unterminated <?...?>");
      p = e + 2;
      continue;
    }
    if (s.compare(p, 2, "<!") == 0) return bad(p, "unexpected <! (DOCTYPE/CDATA not written by our SVG writers)");
    const bool closing = p + 1 < s.size() && s[p + 1] == '/';
    size_t q = p + (closing ? 2 : 1);
    if (q >= s.size() || !svg_name_start(s[q])) return bad(p, "malformed tag name");
    size_t ns = q;
    while (q < s.size() && svg_name_char(s[q])) ++q;
    const std::string name = s.substr(ns, q - ns);
    if (closing) {
      while (q < s.size() && svg_space(s[q])) ++q;
      if (q >= s.size() || s[q] != '>') return bad(p, "malformed closing tag </" + name);
      if (stack.empty() || stack.back() != name)
        return bad(p, "unbalanced </" + name + ">" + (stack.empty() ? "" : " (open: <" + stack.back() + ">)"));
      stack.pop_back();
      p = q + 1;
      continue;
    }
    // attributes
    std::set<std::string> attrs;
    bool has_xmlns = false, self_closing = false;
    while (true) {
      size_t ws = q;
      while (q < s.size() && svg_space(s[q])) ++q;
      if (q >= s.size()) return bad(p, "unterminated <" + name);
      if (s[q] == '>') break;
      if (s[q] == '/') {
        if (q + 1 >= s.size() || s[q + 1] != '>') return bad(q, "'/' not followed by '>' in <" + name);
        self_closing = true;
        ++q;
        break;
      }
      if (q == ws) return bad(q, "no white space before an attribute of <" + name);
      if (!svg_name_start(s[q])) return bad(q, "malformed attribute name in <" + name);
      size_t as = q;
      while (q < s.size() && svg_name_char(s[q])) ++q;
      const std::string attr = s.substr(as, q - as);
      if (!attrs.insert(attr).second) return bad(as, "attribute '" + attr + "' repeated in <" + name);
      while (q < s.size() && svg_space(s[q])) ++q;
      if (q >= s.size() || s[q] != '=') return bad(q, "attribute '" + attr + "' without a value in <" + name);
      ++q;
      while (q < s.size() && svg_space(s[q])) ++q;
      if (q >= s.size() || (s[q] != '"' && s[q] != '\'')) return bad(q, "unquoted value of '" + attr + "'");
      const char quote = s[q++];
      size_t vs = q;
      while (q < s.size() && s[q] != quote) {
        if (s[q] == '<') return bad(q, "'<' inside the value of '" + attr + "'");
        if (s[q] == '&') {
          size_t e = svg_entity_end(s, q);
          if (e == std::string::npos) return bad(q, "unescaped '&' in the value of '" + attr + "'");
          q = e;
          continue;
        }
        ++q;
      }
      if (q >= s.size()) return bad(vs, "unterminated value of '" + attr + "'");
      if (attr == "xmlns" && s.compare(vs, q - vs, "http://www.w3.org/2000/svg") == 0) has_xmlns = true;
      ++q;
    }
    if (stack.empty()) {
      if (++roots > 1) return bad(p, "a second root element <" + name + ">");
      if (name != "svg") return bad(p, "the root is <" + name + ">, not <svg>");
      if (!has_xmlns) return bad(p, "<svg> without xmlns=\"http://www.w3.org/2000/svg\"");
    }
    if (!self_closing) stack.push_back(name);
    p = q + 1;
  }
  if (!stack.empty()) return bad(s.size(), "unclosed <" + stack.back() + ">");
  if (roots != 1) return bad(s.size(), "no root element");
  return true;
}

}  // namespace shiftlab::testutil
