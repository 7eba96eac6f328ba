// The shared spec grammar (core/spec.h): tokens and building blocks, the column of the culprit in
// malformed specs of every grammar (method, model.adapters, transform chains, optim.group_lr,
// sweep --grid), and every spec string of configs/, README.md, scripts/ and tests/ parsed by its
// consumer and round-tripped through the printers (parse -> print -> parse gives the same structure).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "adapters/adapter.h"
#include "core/fs.h"
#include "core/options.h"
#include "core/spec.h"
#include "data/transforms.h"
#include "losses/methods.h"
#include "models/backbones.h"
#include "models/param_groups.h"
#include "support/testing.h"
#include "sweep/sweep.h"

using namespace shiftlab;
using core::SpecArg;
using core::SpecItem;
using core::SpecParser;
using core::SpecValue;

namespace {

enum class Grammar { Method, Adapters, Transforms, GroupLr, Grid };

const char* grammar_name(Grammar g) {
  switch (g) {
    case Grammar::Method: return "method";
    case Grammar::Adapters: return "model.adapters";
    case Grammar::Transforms: return "transform chain";
    case Grammar::GroupLr: return "optim.group_lr";
    case Grammar::Grid: return "--grid";
  }
  return "?";
}

/// Parses `text` with the consumer of grammar `g`.
void spec_consume(Grammar g, const std::string& text) {
  switch (g) {
    case Grammar::Method: losses::parse_method_spec(text); break;
    case Grammar::Adapters: adapters::parse_adapter_specs(text); break;
    case Grammar::Transforms: data::parse_transforms(text); break;
    case Grammar::GroupLr: models::parse_group_lr(text); break;
    case Grammar::Grid: sweep::parse_axis(text); break;
  }
}

/// The SpecError of parsing `text` (nullopt when it parses or throws something else).
std::optional<core::SpecError> spec_error_of(Grammar g, const std::string& text) {
  try {
    spec_consume(g, text);
  } catch (const core::SpecError& e) {
    return e;
  } catch (...) {
  }
  return std::nullopt;
}

std::vector<std::string> spec_lines(const std::string& s) {
  std::vector<std::string> v;
  size_t start = 0;
  while (true) {
    size_t nl = s.find('\n', start);
    v.push_back(s.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) return v;
    start = nl + 1;
  }
}

}  // namespace

// ---------------------------------------------------------------- tokens and building blocks

TEST(CoreSpec, TokensValuesAndPositions) {
  const std::string text = R"(f(8, 0.1, -10, 1e-3, .5, blocks.0, 'a b', "q\"", [1, [2, x]], [], k=v))";
  SpecParser p("t", text);
  auto items = core::parse_spec_items(p, "a name");
  ASSERT_EQ(items.size(), 1u);
  const SpecItem& f = items[0];
  EXPECT_EQ(f.name, "f");
  EXPECT_TRUE(f.parens);
  EXPECT_EQ(f.paren_pos, 1u);
  ASSERT_EQ(f.args.size(), 11u);
  auto num = [&](size_t i, const std::string& as_written, double v) {
    EXPECT_EQ(f.args[i].value.kind, SpecValue::Number) << i;
    EXPECT_EQ(f.args[i].value.text, as_written);
    EXPECT_DOUBLE_EQ(f.args[i].value.number, v);
    EXPECT_EQ(f.args[i].value.pos, text.find(as_written)) << i;
  };
  num(0, "8", 8);
  num(1, "0.1", 0.1);
  num(2, "-10", -10);
  num(3, "1e-3", 0.001);
  num(4, ".5", 0.5);
  EXPECT_EQ(f.args[5].value.kind, SpecValue::Name);
  EXPECT_EQ(f.args[5].value.text, "blocks.0");
  EXPECT_EQ(f.args[6].value.kind, SpecValue::String);
  EXPECT_EQ(f.args[6].value.text, "a b");
  EXPECT_EQ(f.args[7].value.text, "q\"");
  const SpecValue& list = f.args[8].value;
  ASSERT_EQ(list.kind, SpecValue::List);
  ASSERT_EQ(list.items.size(), 2u);
  EXPECT_DOUBLE_EQ(list.items[0].number, 1);
  ASSERT_EQ(list.items[1].items.size(), 2u);
  EXPECT_EQ(list.items[1].items[1].text, "x");
  EXPECT_EQ(f.args[9].value.kind, SpecValue::List);
  EXPECT_TRUE(f.args[9].value.items.empty());
  EXPECT_EQ(f.args[10].key, "k");
  EXPECT_EQ(f.args[10].key_pos, text.find("k=v"));
  EXPECT_EQ(f.args[10].value.text, "v");
  ASSERT_NE(f.find("k"), nullptr);
  EXPECT_EQ(f.find("nope"), nullptr);
  // canonical printing: numbers as written, strings quoted, lists bracketed
  EXPECT_EQ(f.str(), R"(f(8, 0.1, -10, 1e-3, .5, blocks.0, 'a b', 'q"', [1, [2, x]], [], k=v))");
}

TEST(CoreSpec, ItemsSumsTargetsAndArgs) {
  {
    SpecParser p("t", "a, b(), c( 1 ,x = 2 )");
    auto v = core::parse_spec_items(p, "a name");
    ASSERT_EQ(v.size(), 3u);
    EXPECT_FALSE(v[0].parens);
    EXPECT_TRUE(v[1].parens);
    EXPECT_TRUE(v[1].args.empty());
    ASSERT_EQ(v[2].args.size(), 2u);
    EXPECT_EQ(v[2].args[1].key, "x");
    EXPECT_EQ(core::format_spec_items(v), "a, b(), c(1, x=2)");
    SpecParser blank("t", "  ");
    EXPECT_TRUE(core::parse_spec_items(blank, "a name").empty());
  }
  {
    SpecParser p("m", "dann+0.1 * entropy + x*y+E");
    auto v = core::parse_spec_sum(p, "a name");
    ASSERT_EQ(v.size(), 4u);
    EXPECT_FALSE(v[0].weight.has_value());
    ASSERT_TRUE(v[1].weight.has_value());
    EXPECT_DOUBLE_EQ(v[1].weight->number, 0.1);
    EXPECT_EQ(v[1].item.name, "entropy");
    EXPECT_EQ(v[2].weight->kind, SpecValue::Name);  // the consumer decides that a name is no weight
    EXPECT_EQ(v[3].item.name, "E");
    EXPECT_EQ(core::format_spec_sum(v), "dann + 0.1*entropy + x*y + E");
  }
  {
    SpecParser p("a", " ; a@x, y.*;; b(k=1)@**.qkv,8 ;");
    auto v = core::parse_spec_targets(p, "a kind", "a pattern");
    ASSERT_EQ(v.size(), 2u);  // empty specs between ';' are skipped
    ASSERT_EQ(v[0].globs.size(), 2u);
    EXPECT_EQ(v[0].globs[1].text, "y.*");
    EXPECT_EQ(v[1].item.args[0].key, "k");
    EXPECT_EQ(v[1].globs[0].text, "**.qkv");
    EXPECT_EQ(v[1].globs[1].text, "8");
    EXPECT_EQ(core::format_spec_targets(v), "a@x,y.*; b(k=1)@**.qkv,8");
  }
  {
    SpecParser p("g", "stem=0.001, blocks.0 = 1e-3");
    auto v = core::parse_spec_args(p);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[1].key, "blocks.0");
    EXPECT_EQ(v[1].value.text, "1e-3");
    SpecParser empty("g", "");
    EXPECT_TRUE(core::parse_spec_args(empty).empty());
  }
}

TEST(CoreSpec, SweepValuesAreRawTextSplitOutsideBracketsAndQuotes) {
  auto a = sweep::parse_axis(R"x(data.target.transform="resize(20), pad(4)",resize(28))x");
  EXPECT_EQ(a.key, "data.target.transform");
  EXPECT_EQ(a.values, (std::vector<std::string>{"resize(20), pad(4)", "resize(28)"}));
  a = sweep::parse_axis("data.target.transform=normalize(0.5, 0.5),resize(3)");
  EXPECT_EQ(a.values, (std::vector<std::string>{"normalize(0.5, 0.5)", "resize(3)"}));
  a = sweep::parse_axis("model.adapters = lora(r=8)@layer4.*, layer3 | residual@layer3,layer4 ");
  EXPECT_EQ(a.values, (std::vector<std::string>{"lora(r=8)@layer4.*, layer3", "residual@layer3,layer4"}));
  a = sweep::parse_axis("model.weights=/w/a b.pt,hf:x/y");
  EXPECT_EQ(a.values, (std::vector<std::string>{"/w/a b.pt", "hf:x/y"}));
  a = sweep::parse_axis("optim.lr=randint( 8 , 16 )");
  EXPECT_EQ(a.dist, "randint");
  EXPECT_DOUBLE_EQ(a.lo, 8);
  EXPECT_DOUBLE_EQ(a.hi, 16);
  a = sweep::parse_axis("method=uniform,dann");  // a distribution's name alone is a value
  EXPECT_EQ(a.values, (std::vector<std::string>{"uniform", "dann"}));
}

TEST(CoreSpec, ErrorShowsTextColumnAndCaret) {
  try {
    SpecParser p("method", "dann + 0.1*");
    core::parse_spec_sum(p, "a method name");
    FAIL() << "parsed";
  } catch (const core::UsageError& u) {  // a SpecError is a UsageError (exit code 2)
    auto* e = dynamic_cast<const core::SpecError*>(&u);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->context(), "method");
    EXPECT_EQ(e->offset(), 11u);
    EXPECT_EQ(e->column(), 12u);
    auto l = spec_lines(e->what());
    ASSERT_EQ(l.size(), 3u) << e->what();
    EXPECT_EQ(l[0], "method 'dann + 0.1*': expected a method name after '*' at column 12");
    EXPECT_EQ(l[1], "  dann + 0.1*");
    EXPECT_EQ(l[2], "  " + std::string(11, ' ') + "^");
  }
  // what was found instead; columns count characters, not bytes
  try {
    SpecParser p("t", "a(é)");
    core::parse_spec_items(p, "a name");
    FAIL() << "parsed";
  } catch (const core::SpecError& e) {
    EXPECT_EQ(e.column(), 3u);
    EXPECT_EQ(spec_lines(e.what())[0], "t 'a(é)': expected an argument after '(' at column 3, found 'é'");
  }
  try {
    SpecParser p("t", "x(b='abc)");
    core::parse_spec_items(p, "a name");
    FAIL() << "parsed";
  } catch (const core::SpecError& e) {
    EXPECT_EQ(e.column(), 5u);
    EXPECT_NE(e.message().find("unterminated string"), std::string::npos) << e.what();
  }
  // nothing to point at: one line
  EXPECT_EQ(std::string(spec_error_of(Grammar::Method, " ")->what()).find('\n'), std::string::npos);
}

// ---------------------------------------------------------------- malformed specs of each grammar

TEST(CoreSpec, MalformedSpecsNameTheColumn) {
  struct Bad {
    Grammar g;
    std::string text;
    size_t column;
    std::string needle;
  };
  const std::vector<Bad> cases = {
      {Grammar::Method, "dann + 0.1*", 12, "expected a method name after '*'"},
      {Grammar::Method, "dann + entropi", 8, "unknown method 'entropi'"},
      {Grammar::Method, "x*dann", 1, "bad weight 'x'"},
      {Grammar::Method, "0.5*dann + -1*mcc", 12, "bad weight '-1'"},
      {Grammar::Method, "dann +", 7, "expected a method name after '+'"},
      {Grammar::Method, "mcc+E", 5, "'+E' (entropy conditioning) may only follow 'cdan'"},
      {Grammar::Method, "dann entropy", 6, "expected '+' or the end after 'dann'"},
      {Grammar::Method, "dann(hidden=3)", 5, "takes no arguments"},
      {Grammar::Adapters, "lora(r=8)", 10, "expected '@' and a target module pattern after ')'"},
      {Grammar::Adapters, "lorra@x", 1, "unknown adapter 'lorra'"},
      {Grammar::Adapters, "lora(rank=8)@x", 6, "lora takes no argument 'rank'"},
      {Grammar::Adapters, "lora(r)@x", 6, "argument 'r' is not key=value"},
      {Grammar::Adapters, "lora(r=8@x", 9, "expected ',' or ')' after '8'"},
      {Grammar::Adapters, "residual@layer3; lora@a@b", 24, "more than one '@'"},
      {Grammar::Adapters, "residual@layer3 layer4", 17, "expected ',', ';' or the end after 'layer3'"},
      {Grammar::Adapters, "lora@", 6, "expected a target module pattern after '@'"},
      {Grammar::Adapters, "lora(r=1, r=2)@x", 11, "argument 'r' given twice"},
      {Grammar::Transforms, "resize(32), centre_crop(28)", 13, "unknown transform 'centre_crop'"},
      {Grammar::Transforms, "resize(32", 10, "unbalanced '(' at column 7"},
      {Grammar::Transforms, "resize(32),, hflip", 12, "expected a transform name after ','"},
      {Grammar::Transforms, "normalize(mean=[0.1, x], std=[1, 1])", 22, "'x' is not a number"},
      {Grammar::Transforms, "normalize(mean=[0.1, 0.2, std=[1, 1])", 30, "unbalanced '[' at column 16"},
      {Grammar::Transforms, "pad(4, fill=0, 2)", 16, "positional argument after key=value"},
      {Grammar::Transforms, "random_crop(32, padding=4, padding=2)", 28, "argument 'padding' given twice"},
      {Grammar::Transforms, "resize(32) center_crop(28)", 12, "expected ',' or the end after ')'"},
      {Grammar::Transforms, "resize(32), hflip(p=2)", 13, "transform hflip"},  // the factory's message, at its item
      {Grammar::Transforms, "resize(3x)", 8, "found '3x'"},
      {Grammar::Transforms, "pad(4, fill=[])", 13, "empty list"},
      {Grammar::GroupLr, "layer4:1e-3", 7, "expected ',' or the end after 'layer4'"},
      {Grammar::GroupLr, "layer4=abc", 8, "the lr of group 'layer4' must be a non-negative number"},
      {Grammar::GroupLr, "layer4=-1", 8, "must be a non-negative number"},
      {Grammar::GroupLr, "head=1, head=2", 9, "argument 'head' given twice"},
      {Grammar::GroupLr, "0.1, layer4=1e-3", 1, "'0.1' is not name=lr"},
      {Grammar::GroupLr, "layer4=1e-3, 0.1", 14, "positional argument after key=value"},
      {Grammar::Grid, "method", 7, "expected '=' and the values after 'method'"},
      {Grammar::Grid, "method=", 8, "expected a value after '='"},
      {Grammar::Grid, "method=a,,b", 10, "expected a value after ','"},
      {Grammar::Grid, "method=a,b,a", 12, "value 'a' given twice"},
      {Grammar::Grid, "optim.lr=loguniform(0, 1)", 21, "loguniform needs lo > 0"},
      {Grammar::Grid, "optim.lr=uniform(1)", 17, "uniform takes two bounds"},
      {Grammar::Grid, "optim.lr=uniform(2, 1)", 18, "lo < hi"},
      {Grammar::Grid, "t=resize(20|resize(28)", 9, "unbalanced '('"},
      {Grammar::Grid, "=a,b", 1, "expected an option name"},
  };
  for (auto& c : cases) {
    auto e = spec_error_of(c.g, c.text);
    ASSERT_TRUE(e.has_value()) << grammar_name(c.g) << " '" << c.text << "' gave no SpecError";
    std::string first = spec_lines(e->what())[0];
    EXPECT_EQ(e->context(), grammar_name(c.g)) << first;
    EXPECT_EQ(e->column(), c.column) << first;
    EXPECT_EQ(first.rfind(std::string(grammar_name(c.g)) + " '" + c.text + "': ", 0), 0u) << first;
    EXPECT_NE(first.find(c.needle), std::string::npos) << "want '" << c.needle << "' in: " << first;
    EXPECT_NE(first.find(core::str(" at column ", c.column)), std::string::npos) << first;
  }
  // an unknown name offers the nearest known one and lists them all
  auto e = spec_error_of(Grammar::Method, "dann + entropi");
  EXPECT_NE(std::string(e->what()).find("did you mean 'entropy'? (known: "), std::string::npos) << e->what();
  e = spec_error_of(Grammar::Adapters, "lorra@x");
  EXPECT_NE(std::string(e->what()).find("did you mean 'lora'?"), std::string::npos) << e->what();
  e = spec_error_of(Grammar::Transforms, "resize(32), centre_crop(28)");
  EXPECT_NE(std::string(e->what()).find("did you mean 'center_crop'?"), std::string::npos) << e->what();
}

// ---------------------------------------------------------------- every spec in the repository

namespace {

struct RepoSpec {
  Grammar g;
  std::string text;
  std::string where;
};

/// Every spec-valued key of every INI file under configs/.
std::vector<RepoSpec> config_specs() {
  std::vector<RepoSpec> out;
  for (auto& e : std::filesystem::recursive_directory_iterator(testutil::source_path("configs"))) {
    if (e.path().extension() != ".ini") continue;
    for (auto& entry : core::parse_ini_text(core::read_file(e.path().string()), e.path().string())) {
      const std::string& k = entry.key;
      std::optional<Grammar> g;
      if (k == "method") g = Grammar::Method;
      else if (k == "model.adapters") g = Grammar::Adapters;
      else if (k == "optim.group_lr") g = Grammar::GroupLr;
      else if (k.size() >= 9 && k.compare(k.size() - 9, 9, "transform") == 0) g = Grammar::Transforms;
      if (g) out.push_back({*g, entry.value, core::str(e.path().filename().string(), ":", entry.line, " ", k)});
    }
  }
  return out;
}

/// The spec strings written in README.md, scripts/*.sh, configs' comments, apps' help and tests/*.cpp
/// (collected with grep; the malformed ones of error tests are left out).
std::vector<RepoSpec> written_specs() {
  std::vector<RepoSpec> out;
  auto add = [&](Grammar g, const std::string& where, std::initializer_list<const char*> texts) {
    for (auto* t : texts) out.push_back({g, t, where});
  };
  add(Grammar::Method, "README.md", {"dann", "dann + 0.1*entropy", "0.5*dan + mcc", "cdan+E", "source_only"});
  add(Grammar::Transforms, "README.md",
      {"random_resized_crop(300), hflip, normalize(imagenet)", "resize(320), center_crop(300), normalize(imagenet)"});
  add(Grammar::GroupLr, "README.md", {"layer4=1e-3,head=1e-2"});
  add(Grammar::Adapters, "README.md",
      {"residual@layer3,layer4; bottleneck(dim=64)@layer4; lora(r=8,alpha=16,dropout=0)@layer4.*.conv*",
       "lora(r=8,alpha=16)@blocks.*.attn.qkv; bottleneck(dim=64)@blocks.*", "lora(r=8)@encoder.layers.*.self_attention.in_proj",
       "lora(r=4)@features.*.*.block.*.fc*,features.*.*.block.3.0", "bottleneck(dim=64)@blocks.*.mlp"});
  add(Grammar::Grid, "README.md, apps/cmd_sweep.cpp",
      {"method=source_only,dann,dan", "optim.lr=1e-3,1e-2", "optim.lr=1e-3,3e-3"});
  add(Grammar::Method, "scripts/*.sh", {"source_only", "dann", "dan", "jan", "cdan", "coral", "mcc"});
  add(Grammar::Adapters, "scripts/*.sh, configs/adapters",
      {"residual@layer3,layer4", "bottleneck(dim=64)@layer1,layer2,layer3,layer4",
       "lora(r=8,alpha=16)@layer3.*.conv*,layer4.*.conv*"});
  add(Grammar::Method, "tests/*.cpp",
      {"cdan+E + 0.1*mcc", "dann + 0.1*entropy + 0.5*mcc", "0.5*dann", "adabn + entropy", "adabn", "dan + jan",
       "dann + cdan + 0.5*dann", "dann + cdan", "2*cdan + E + 1e-2*entropy", " 0.5 * dan+mcc ", "0.3*cdan+E + 2*coral",
       "dann+0.1*entropy", "0.5*dan", "entropy", "bsp", "afn", "mdd"});
  add(Grammar::Adapters, "tests/*.cpp",
      {"", "  ", " residual@layer3, layer4 ; bottleneck(dim=64)@layer4;lora( r=8 ,alpha=16, dropout=0)@blocks.*.attn.qkv;",
       "lora(r=2)@layer4.*.conv1; bottleneck(dim=8)@layer3", "lora(r=4)@layer4.*.conv1; bottleneck(dim=8)@layer3",
       "residual@layer3; lora(r=4)@layer4.*.conv1", "bottleneck@layer5", "lora(r=0)@layer1.0.conv1",
       "lora(r=2)@layer3.*.conv9", "lora@8", "lora@features.1.0.block.0.0", "residual(mode=diagonal)@layer1",
       "residual@blocks.0", "residual@features.1", "residual@layer3.1; bottleneck(dim=8)@layer4; lora(r=2)@layer4.*.conv1",
       "lora(r=2)@layer4.*.conv1", "lora@x"});
  add(Grammar::Transforms, "tests/*.cpp",
      {"", "resize(28)", "resize(28), normalize(0.5, 0.5)", "resize(28), random_crop(28, padding=2), normalize(0.5, 0.5)",
       "resize(28), pad(2), normalize(0.5, 0.5)", "resize(32), normalize(0.5, 0.5)", "resize(20), pad(4)",
       "normalize(0.5, 0.5)", "resize(256), center_crop(224), normalize(mean=[0.5], std=[0.25])",
       "random_resized_crop(380), hflip, normalize(imagenet)", "adjust_color(brightness=1.3)", "adjust_color(contrast=0.6)",
       "adjust_color(hue=0.2)", "adjust_color(saturation=1.7)", "bands(3)", "bands(4, 0, 2)", "bands(7)",
       "bands(3, 2, 1), normalize(mean=[0.1, 0.2, 0.3], std=[1, 2, 3]), vflip(0.3)", "center_crop(20, 31)",
       "center_crop(41, 60)", "color_jitter(0.4, 0.4, 0.4, 0.1)", "color_jitter(brightness=0)", "grayscale",
       "grey_to_rgb", "hflip", "hflip(1)", "vflip", "vflip(1)", "normalize(imagenet)",
       "normalize(mean=[0.1, 0.2], std=[1, 1])", "normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])",
       "pad(4, fill=0.5), random_crop(32), rotation(10), color_jitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)",
       "pad([1, 2, 3, 4], fill=0.25)", "rand_augment(2, 9)", "random_crop(10, padding=2), hflip", "random_crop(30, padding=4)",
       "random_resized_crop(12, scale=[0.5, 1], ratio=[1, 1])", "random_resized_crop(16)",
       "random_resized_crop(20, scale=[0.2, 1]), hflip, color_jitter(0.2, 0.2), normalize(0.5, 0.5)",
       "random_resized_crop(224), hflip",
       "random_resized_crop(224, scale=[0.08, 1], ratio=[0.75, 1.333333333]), hflip, normalize(imagenet)",
       "random_resized_crop(8, scale=[0.3, 1]), hflip, rotation(20), color_jitter(0.3, 0.3), normalize(0.5, 0.25)",
       "resize(16, 16), grey_to_rgb", "resize(17, 23)", "resize(18, 24)", "resize(30)", "resize(50, 20)", "resize(61, 80)",
       "resize(8, 8), grey_to_rgb", "resize(32), center_crop(28)", "resize(32), center_crop(28), grey_to_rgb, hflip",
       "resize(32), center_crop(28), grey_to_rgb, normalize(0.5, 0.5)", "resize(320), center_crop(300)", "rotation(30)",
       "rotation([0, 0])", "rotation([45, 45], fill=0)", "none"});
  add(Grammar::GroupLr, "tests/*.cpp", {"", "layer4=1e-3, head=0.01"});
  add(Grammar::Grid, "tests/*.cpp",
      {"method=source_only,dann", "optim.lr=1e-3, 3e-3", "data.target.transform=resize(20), pad(4)|resize(28)",
       "optim.lr=loguniform(1e-4, 1e-2)", "data.source.batch_size=randint(8, 16)", "method=source_only,dann,dan",
       "optim.lr=0.01,fast", "optim.lrr=1,2", "method=a,b", "method=c"});
  return out;
}

/// The generic structure of a spec under its grammar, printed canonically.
std::string generic_print(Grammar g, const std::string& text) {
  SpecParser p(grammar_name(g), text);
  switch (g) {
    case Grammar::Method: return core::format_spec_sum(core::parse_spec_sum(p, "a method name"));
    case Grammar::Adapters: return core::format_spec_targets(core::parse_spec_targets(p, "a kind", "a pattern"));
    case Grammar::Transforms: return core::format_spec_items(core::parse_spec_items(p, "a transform name"));
    case Grammar::GroupLr: return core::format_spec_args(core::parse_spec_args(p));
    case Grammar::Grid: return text;
  }
  return text;
}

/// The consumer's structure, printed (its own printer where it has one) for comparison.
std::string consumer_print(Grammar g, const std::string& text) {
  switch (g) {
    case Grammar::Method: {
      std::string s;
      for (auto& t : losses::parse_method_spec(text)) s += core::str(t.weight, "*", t.name, t.entropy_flag ? "+E" : "", "; ");
      return s;
    }
    case Grammar::Adapters: {
      std::string s;
      for (auto& a : adapters::parse_adapter_specs(text)) {
        s += a.kind + "|";
        for (auto& [k, v] : a.args) s += k + "=" + v + "|";
        for (auto& p : a.patterns) s += p + "|";
        s += "; ";
      }
      return s;
    }
    case Grammar::Transforms: return data::parse_transforms(text).spec();
    case Grammar::GroupLr: {
      std::string s;
      for (auto& [k, v] : models::parse_group_lr(text)) s += core::str(k, "=", v, "; ");
      return s;
    }
    case Grammar::Grid: {
      auto a = sweep::parse_axis(text);
      std::string s = a.key + "|" + a.dist + core::str("|", a.lo, "|", a.hi);
      for (auto& v : a.values) s += "|" + v;
      return s;
    }
  }
  return "";
}

/// The consumer's own printer (the text it would write back), or "" when it has none.
std::string consumer_format(Grammar g, const std::string& text) {
  switch (g) {
    case Grammar::Method: return losses::format_method_spec(losses::parse_method_spec(text));
    case Grammar::Adapters: return adapters::format_adapter_specs(adapters::parse_adapter_specs(text));
    case Grammar::Transforms: return data::parse_transforms(text).spec();
    case Grammar::GroupLr: return generic_print(g, text);
    case Grammar::Grid: {
      auto a = sweep::parse_axis(text);
      if (!a.dist.empty()) return core::str(a.key, "=", a.dist, "(", a.lo, ", ", a.hi, ")");
      bool comma = false;
      for (auto& v : a.values) comma = comma || v.find(',') != std::string::npos;
      std::string s = a.key + "=";
      for (size_t i = 0; i < a.values.size(); ++i) s += (i ? (comma ? "|" : ",") : "") + a.values[i];
      return s;
    }
  }
  return "";
}

}  // namespace

TEST(CoreSpec, EverySpecInTheRepositoryParsesAndRoundTrips) {
  auto specs = config_specs();
  std::map<Grammar, int> from_configs;
  for (auto& s : specs) ++from_configs[s.g];
  // the scan found what the configs hold (10 INI files: a method each, 4 group_lr, ~30 chains)
  EXPECT_GE(from_configs[Grammar::Method], 10);
  EXPECT_GE(from_configs[Grammar::Transforms], 25);
  EXPECT_GE(from_configs[Grammar::GroupLr], 4);
  for (auto& s : written_specs()) specs.push_back(s);
  // the backbones' recorded train / eval chains
  for (auto& name : models::backbone_registry().names())
    if (auto* info = models::backbone_info(name)) {
      specs.push_back({Grammar::Transforms, info->train_transform(), name + " train_transform()"});
      specs.push_back({Grammar::Transforms, info->eval_transform(), name + " eval_transform()"});
    }
  size_t checked = 0;
  for (auto& s : specs) {
    SCOPED_TRACE(core::str(grammar_name(s.g), " '", s.text, "' (", s.where, ")"));
    // the consumer parses it
    std::string structure;
    ASSERT_NO_THROW(structure = consumer_print(s.g, s.text));
    // generic structure: parse -> print -> parse is the same, and the print is a fixed point
    std::string once = generic_print(s.g, s.text);
    EXPECT_EQ(generic_print(s.g, once), once);
    EXPECT_EQ(consumer_print(s.g, once), structure) << "generic print: " << once;
    // the consumer's printer: its text parses back to the same structure and is a fixed point
    std::string text = consumer_format(s.g, s.text);
    EXPECT_EQ(consumer_print(s.g, text), structure) << "printed: " << text;
    EXPECT_EQ(consumer_format(s.g, text), text);
    ++checked;
  }
  EXPECT_GE(checked, 150u);
}
