// A strict-enough SVG well-formedness check without an XML library, shared by every test that
// writes a picture (probe charts, t-SNE scatters, report curves).
#pragma once

#include <string>

namespace shiftlab::testutil {

/// True when `s` is one well-formed XML document whose root is <svg xmlns="http://www.w3.org/2000/svg">:
/// tags balanced and properly nested, names well-formed, every attribute name="value" (quoted, not
/// repeated in one element, no '<' and only valid entities inside), text with only valid entities
/// (&amp; &lt; &gt; &quot; &apos; &#N; &#xH;), nothing but white space, comments or an XML
/// declaration outside the root. Otherwise false, with the reason and its byte offset in *why.
bool svg_well_formed(const std::string& s, std::string* why);

}  // namespace shiftlab::testutil
