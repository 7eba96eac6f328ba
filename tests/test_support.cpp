// The test helpers themselves: REQUIRE_PYTHON fails under CI and skips with the reason otherwise
// (checked on a real reference test run as a child process), and the SVG checker rejects what it
// must reject.
#include <gtest/gtest.h>
#include <gtest/gtest-spi.h>

#include <cstdlib>
#include <string>

#include "support/svg_check.h"
#include "support/testing.h"

using namespace shiftlab;

namespace {

/// Sets (or with nullptr unsets) an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_.c_str(), old_.c_str(), 1);
    else ::unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

void require_missing_module() { REQUIRE_PYTHON({"numpy", "shiftlab_no_such_module"}); }

/// Runs one test of this executable in a child process with the given environment prefix.
int run_self(const std::string& env, const std::string& filter, std::string* out) {
  return testutil::run_shell(env + " /proc/" + std::to_string(::getpid()) + "/exe --gtest_filter=" + filter, out);
}

}  // namespace

TEST(TestSupport, RequirePythonFailsUnderCiAndSkipsWithTheReasonOtherwise) {
  {
    ScopedEnv ci("CI", nullptr);
    auto r = testutil::require_python({"numpy", "shiftlab_no_such_module"});
    EXPECT_FALSE(r.met);
    EXPECT_FALSE(r.fail);
    EXPECT_NE(r.why.find("cannot import shiftlab_no_such_module"), std::string::npos) << r.why;
    EXPECT_EQ(r.why.find("numpy"), std::string::npos) << "numpy is there: " << r.why;
  }
  for (const char* v : {"true", "1"}) {
    ScopedEnv ci("CI", v);
    EXPECT_TRUE(testutil::under_ci());
    EXPECT_TRUE(testutil::require_python({"shiftlab_no_such_module"}).fail);
    EXPECT_FATAL_FAILURE(require_missing_module(), "cannot import shiftlab_no_such_module");
  }
  for (const char* v : {"false", "0", ""}) {
    ScopedEnv ci("CI", v);
    EXPECT_FALSE(testutil::under_ci()) << "CI=" << v;
  }
  {
    ScopedEnv ci("CI", "true");
    auto ok = testutil::require_python({"json"});  // the standard library is always there
    EXPECT_TRUE(ok.met) << ok.why;
    EXPECT_FALSE(ok.fail);
  }

  // a real reference test, with its module hidden: fails under CI=true, skipped (saying why) otherwise
  const std::string test = "ProbeTransferability.MatchesIndependentNumpyReference";
  std::string out;
  int rc = run_self("CI=true SHIFTLAB_TEST_MISSING_PYTHON=numpy", test, &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("[  FAILED  ] " + test), std::string::npos) << out;
  EXPECT_NE(out.find("cannot import numpy"), std::string::npos) << out;
  rc = run_self("env -u CI SHIFTLAB_TEST_MISSING_PYTHON=numpy", test, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("[  SKIPPED ] " + test), std::string::npos) << out;
  EXPECT_NE(out.find("cannot import numpy"), std::string::npos) << out;
  EXPECT_EQ(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
}

TEST(TestSupport, SvgCheckerAcceptsWellFormedAndRejectsTheRest) {
  const std::string ns = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\">";
  std::string why;
  for (std::string good : {ns + "</svg>", ns + "<g><rect x='1' y=\"2\"/><text>a &amp; b &lt; c &#931; &#x3a3;</text></g></svg>\n",
                           "<?xml version=\"1.0\"?>\n<!-- made by a test -->\n" + ns + "<path d=\"M0 0 L1 1\" /></svg>"})
    EXPECT_TRUE(testutil::svg_well_formed(good, &why)) << good << ": " << why;
  const std::vector<std::pair<std::string, std::string>> bad{
      {ns + "<g></svg>", "unbalanced"},
      {ns + "<g>", "unclosed <g>"},
      {ns, "unclosed <svg>"},
      {"<svg width=\"1\"></svg>", "without xmlns"},
      {"<html xmlns=\"http://www.w3.org/2000/svg\"></html>", "root is <html>"},
      {ns + "</svg>" + ns + "</svg>", "second root"},
      {ns + "</svg>trailing", "outside the root"},
      {ns + "<text>a & b</text></svg>", "unescaped '&'"},
      {ns + "<text>&nbsp;</text></svg>", "unknown entity"},
      {ns + "<rect x=1/></svg>", "unquoted"},
      {ns + "<rect x=\"1\" x=\"2\"/></svg>", "repeated"},
      {ns + "<rect x/></svg>", "without a value"},
      {ns + "<text title=\"a<b\">t</text></svg>", "'<' inside the value"},
      {ns + "<rect x=\"1\"y=\"2\"/></svg>", "no white space"},
      {ns + "<rect x=\"1/>", "unterminated value"},
      {ns + "<1rect/></svg>", "malformed tag name"},
      {ns + "<!-- open </svg>", "unterminated comment"},
      {"", "no root element"},
  };
  for (const auto& [doc, reason] : bad) {
    EXPECT_FALSE(testutil::svg_well_formed(doc, &why)) << doc;
    EXPECT_NE(why.find(reason), std::string::npos) << doc << ": " << why;
  }
}
