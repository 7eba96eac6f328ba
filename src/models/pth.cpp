// load_pth: torch.save checkpoints (zip and legacy formats) through a restricted unpickler.
//
// libtorch 1.13's torch::pickle_load turns collections.OrderedDict into None, so it cannot read
// the state dicts torchvision publishes (OrderedDicts carrying `_metadata`). This reader
// understands the pickle opcodes of protocols 2-5 and only the objects a state dict contains:
// dicts / OrderedDicts, lists, tuples, strings, numbers, and tensors rebuilt from storages
// (torch._utils._rebuild_tensor_v2 / _v3 / _rebuild_parameter / _rebuild_from_type_v2). Any other
// class becomes an opaque placeholder and nothing is ever executed; if the requested object itself
// is opaque (e.g. a whole pickled nn.Module) loading fails with a pointer to the conversion script.
#include <caffe2/serialize/inline_container.h>
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <fstream>
#include <unordered_map>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "models/weights.h"

namespace shiftlab::models {

using core::Error;

namespace {

const char* kConvertHint = "convert it with scripts/convert_weights.py (Python) to .safetensors";

struct PyObj;
// Objects live in an Arena owned by the load call; an Obj is a plain pointer into it. A pickle
// can build cycles (a list appended to itself through the memo) and deep nesting: with an arena
// neither leaks nor recurses on destruction.
using Obj = PyObj*;

struct StorageRef {
  std::string key;
  torch::Dtype dtype = torch::kUInt8;
  int64_t numel = 0;  // elements of dtype
  torch::Tensor data; // 1-D, filled when resolved
};

struct TensorRef {
  Obj storage;
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;
  bool has_dtype = false;  // _rebuild_tensor_v3: storage is untyped bytes
  torch::Dtype dtype = torch::kFloat32;
};

struct PyObj {
  enum Kind { None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict, Global, Opaque, Storage, Tensor };
  Kind kind = None;
  int64_t i = 0;
  double f = 0;
  std::string s;  // Str, Bytes, BigInt (little-endian bytes), Global / Opaque ("module.name")
  std::vector<Obj> items;
  std::vector<std::pair<Obj, Obj>> dict;
  std::shared_ptr<StorageRef> storage;
  std::shared_ptr<TensorRef> tensor;
};

// Every object one load creates; bounded, so a pickle cannot grow memory far beyond its size.
class Arena {
 public:
  explicit Arena(std::string what) : what_(std::move(what)) {}
  Obj make(PyObj::Kind k) {
    if (objs_.size() >= kMaxObjects)
      throw Error(core::str("'", what_, "': the pickle builds more than ", kMaxObjects,
                            " objects (not a state dict, or a malicious file)"));
    objs_.emplace_back();
    objs_.back().kind = k;
    return &objs_.back();
  }
  Obj make_str(PyObj::Kind k, std::string s) {
    Obj o = make(k);
    o->s = std::move(s);
    return o;
  }
  static constexpr size_t kMaxObjects = size_t{1} << 22;

 private:
  std::string what_;
  std::deque<PyObj> objs_;  // stable addresses
};

const char* kind_name(PyObj::Kind k) {
  switch (k) {
    case PyObj::None: return "None";
    case PyObj::Bool: return "bool";
    case PyObj::Int: case PyObj::BigInt: return "int";
    case PyObj::Float: return "float";
    case PyObj::Str: return "str";
    case PyObj::Bytes: return "bytes";
    case PyObj::Tuple: return "tuple";
    case PyObj::List: return "list";
    case PyObj::Dict: return "dict";
    case PyObj::Global: return "class";
    case PyObj::Opaque: return "object";
    case PyObj::Storage: return "storage";
    case PyObj::Tensor: return "tensor";
  }
  return "?";
}

bool storage_dtype(const std::string& g, torch::Dtype* d) {
  static const std::map<std::string, torch::Dtype> m = {
      {"torch.FloatStorage", torch::kFloat32},  {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},   {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},     {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},    {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},     {"torch.BoolStorage", torch::kBool},
      {"torch.UntypedStorage", torch::kUInt8},  {"torch.storage.UntypedStorage", torch::kUInt8},
  };
  auto it = m.find(g);
  if (it == m.end()) return false;
  *d = it->second;
  return true;
}

bool torch_dtype_global(const std::string& g, torch::Dtype* d) {
  static const std::map<std::string, torch::Dtype> m = {
      {"torch.float32", torch::kFloat32}, {"torch.float64", torch::kFloat64}, {"torch.float16", torch::kFloat16},
      {"torch.bfloat16", torch::kBFloat16}, {"torch.int64", torch::kInt64}, {"torch.int32", torch::kInt32},
      {"torch.int16", torch::kInt16}, {"torch.int8", torch::kInt8}, {"torch.uint8", torch::kUInt8},
      {"torch.bool", torch::kBool},
  };
  auto it = m.find(g);
  if (it == m.end()) return false;
  *d = it->second;
  return true;
}

// The restricted unpickler. `persistent` turns a persistent id into a Storage object.
class Unpickler {
 public:
  Unpickler(Arena& arena, const char* data, size_t size, size_t pos, std::string what,
            std::function<Obj(const Obj&)> persistent)
      : arena_(arena), p_(data), n_(size), pos_(pos), what_(std::move(what)), persistent_(std::move(persistent)) {}

  size_t pos() const { return pos_; }

  Obj load() {
    stack_.clear();
    marks_.clear();
    for (;;) {
      size_t at = pos_;
      uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                 // PROTO
        case 0x95: take(8); break;              // FRAME
        case '.':                               // STOP
          if (stack_.size() != 1) fail(at, "STOP with a stack of ", stack_.size());
          return stack_.back();
        case '(': marks_.push_back(stack_.size()); break;
        case '0': pop(at); break;
        case '1': pop_mark(at); break;
        case '2': push(top(at)); break;
        case 'N': push(make(PyObj::None)); break;
        case 0x88: case 0x89: {
          auto o = make(PyObj::Bool);
          o->i = op == 0x88;
          push(o);
          break;
        }
        case 'J': push_int(static_cast<int32_t>(le(4))); break;
        case 'K': push_int(static_cast<int64_t>(le(1))); break;
        case 'M': push_int(static_cast<int64_t>(le(2))); break;
        case 0x8a: push_long(le(1), at); break;
        case 0x8b: push_long(le(4), at); break;
        case 'G': {
          const char* b = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(b[k]);  // big-endian
          auto o = make(PyObj::Float);
          std::memcpy(&o->f, &bits, 8);
          push(o);
          break;
        }
        case 'X': push_bytes(PyObj::Str, le(4)); break;
        case 0x8c: push_bytes(PyObj::Str, le(1)); break;
        case 0x8d: push_bytes(PyObj::Str, le(8)); break;
        case 'T': push_bytes(PyObj::Bytes, le(4)); break;
        case 'U': push_bytes(PyObj::Bytes, le(1)); break;
        case 'B': push_bytes(PyObj::Bytes, le(4)); break;
        case 'C': push_bytes(PyObj::Bytes, le(1)); break;
        case 0x8e: push_bytes(PyObj::Bytes, le(8)); break;
        case ')': push(make(PyObj::Tuple)); break;
        case ']': push(make(PyObj::List)); break;
        case '}': push(make(PyObj::Dict)); break;
        case 0x8f: push(make(PyObj::List)); break;  // EMPTY_SET (kept as a list)
        case 't': case 'l': {
          auto o = make(op == 't' ? PyObj::Tuple : PyObj::List);
          o->items = pop_to_mark(at);
          push(o);
          break;
        }
        case 0x91: {  // FROZENSET
          auto o = make(PyObj::List);
          o->items = pop_to_mark(at);
          push(o);
          break;
        }
        case 0x85: case 0x86: case 0x87: {
          size_t k = op - 0x84;
          if (stack_.size() < k) fail(at, "TUPLE", k, " on a short stack");
          auto o = make(PyObj::Tuple);
          o->items.assign(stack_.end() - static_cast<long>(k), stack_.end());
          stack_.resize(stack_.size() - k);
          push(o);
          break;
        }
        case 'd': {
          auto items = pop_to_mark(at);
          if (items.size() % 2) fail(at, "DICT with an odd number of items");
          auto o = make(PyObj::Dict);
          for (size_t k = 0; k < items.size(); k += 2) o->dict.emplace_back(items[k], items[k + 1]);
          push(o);
          break;
        }
        case 'a': {
          Obj v = pop(at);
          Obj l = top(at);
          if (l->kind == PyObj::List) l->items.push_back(v);
          break;
        }
        case 'e': case 0x90: {  // APPENDS, ADDITEMS
          auto items = pop_to_mark(at);
          Obj l = top(at);
          if (l->kind == PyObj::List) l->items.insert(l->items.end(), items.begin(), items.end());
          break;
        }
        case 's': {
          Obj v = pop(at);
          Obj k = pop(at);
          set_item(top(at), k, v, at);
          break;
        }
        case 'u': {
          auto items = pop_to_mark(at);
          if (items.size() % 2) fail(at, "SETITEMS with an odd number of items");
          Obj d = top(at);
          for (size_t k = 0; k < items.size(); k += 2) set_item(d, items[k], items[k + 1], at);
          break;
        }
        case 'q': memo_put(le(1), at); break;
        case 'r': memo_put(le(4), at); break;
        case 0x94: memo_put(memo_.size(), at); break;
        case 'p': memo_put(parse_uint_line(at), at); break;
        case 'h': push(get(le(1), at)); break;
        case 'j': push(get(le(4), at)); break;
        case 'g': push(get(parse_uint_line(at), at)); break;
        case 'c': {
          std::string mod = line(at), name = line(at);
          push(make_str(PyObj::Global, mod + "." + name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Obj name = pop(at), mod = pop(at);
          if (name->kind != PyObj::Str || mod->kind != PyObj::Str) fail(at, "STACK_GLOBAL without strings");
          push(make_str(PyObj::Global, mod->s + "." + name->s));
          break;
        }
        case 'Q': {  // BINPERSID
          Obj pid = pop(at);
          push(persistent_(pid));
          break;
        }
        case 'R': {  // REDUCE
          Obj args = pop(at);
          Obj fn = pop(at);
          push(reduce(fn, args, at));
          break;
        }
        case 0x81: {  // NEWOBJ: cls.__new__(cls, *args) -> an opaque object, never constructed
          pop(at);
          Obj cls = pop(at);
          push(make_str(PyObj::Opaque, cls->kind == PyObj::Global ? cls->s : std::string("?")));
          break;
        }
        case 0x92: {  // NEWOBJ_EX
          pop(at);
          pop(at);
          Obj cls = pop(at);
          push(make_str(PyObj::Opaque, cls->kind == PyObj::Global ? cls->s : std::string("?")));
          break;
        }
        case 'b': pop(at); top(at); break;  // BUILD: attribute state (OrderedDict._metadata) ignored
        default:
          fail(at, "unsupported pickle opcode 0x", hex(op));
      }
    }
  }

 private:
  template <typename... A>
  [[noreturn]] void fail(size_t at, const A&... a) const {
    throw Error(core::str("'", what_, "': cannot read the pickle at byte ", at, ": ", a..., " — ", kConvertHint));
  }
  static std::string hex(uint8_t b) {
    const char* d = "0123456789abcdef";
    return std::string{d[b >> 4], d[b & 15]};
  }
  const char* take(uint64_t k) {
    if (k > n_ - pos_) fail(pos_, "truncated (", k, " bytes wanted, ", n_ - pos_, " left)");
    const char* r = p_ + pos_;
    pos_ += static_cast<size_t>(k);
    return r;
  }
  uint8_t u8() { return static_cast<uint8_t>(*take(1)); }
  uint64_t le(int k) {
    const char* b = take(static_cast<uint64_t>(k));
    uint64_t v = 0;
    for (int j = k - 1; j >= 0; --j) v = (v << 8) | static_cast<uint8_t>(b[j]);
    return v;
  }
  std::string line(size_t at) {
    const void* nl = std::memchr(p_ + pos_, '\n', n_ - pos_);
    if (!nl) fail(at, "unterminated text argument");
    size_t len = static_cast<size_t>(static_cast<const char*>(nl) - (p_ + pos_));
    std::string s(p_ + pos_, len);
    pos_ += len + 1;
    return s;
  }
  uint64_t parse_uint_line(size_t at) {
    std::string s = line(at);
    try {
      return std::stoull(s);
    } catch (...) {
      fail(at, "bad memo index '", s, "'");
    }
  }
  Obj make(PyObj::Kind k) { return arena_.make(k); }
  Obj make_str(PyObj::Kind k, std::string s) { return arena_.make_str(k, std::move(s)); }
  void memo_put(uint64_t idx, size_t at) {
    if (memo_.size() >= Arena::kMaxObjects) fail(at, "more than ", Arena::kMaxObjects, " memo entries");
    memo_[idx] = top(at);
  }
  void push(Obj o) { stack_.push_back(o); }
  Obj pop(size_t at) {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail(at, "pop from an empty stack");
    Obj o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj top(size_t at) {
    if (stack_.empty()) fail(at, "empty stack");
    return stack_.back();
  }
  std::vector<Obj> pop_to_mark(size_t at) {
    if (marks_.empty()) fail(at, "no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) fail(at, "corrupt MARK");
    std::vector<Obj> items(stack_.begin() + static_cast<long>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void pop_mark(size_t at) { pop_to_mark(at); }
  Obj get(uint64_t idx, size_t at) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail(at, "memo entry ", idx, " used before it was set");
    return it->second;
  }
  void push_int(int64_t v) {
    auto o = make(PyObj::Int);
    o->i = v;
    push(o);
  }
  void push_long(uint64_t nbytes, size_t at) {
    const char* b = take(nbytes);
    if (nbytes <= 8) {
      uint64_t v = 0;
      for (int j = static_cast<int>(nbytes) - 1; j >= 0; --j) v = (v << 8) | static_cast<uint8_t>(b[j]);
      if (nbytes > 0 && nbytes < 8 && (static_cast<uint8_t>(b[nbytes - 1]) & 0x80))
        v |= ~uint64_t(0) << (8 * nbytes);  // sign-extend
      push_int(static_cast<int64_t>(v));
    } else {
      (void)at;
      push(make_str(PyObj::BigInt, std::string(b, static_cast<size_t>(nbytes))));
    }
  }
  void push_bytes(PyObj::Kind k, uint64_t len) {
    const char* b = take(len);
    push(make_str(k, std::string(b, static_cast<size_t>(len))));
  }
  void set_item(const Obj& d, const Obj& k, const Obj& v, size_t at) {
    if (d->kind == PyObj::Dict) d->dict.emplace_back(k, v);
    else if (d->kind != PyObj::Opaque) fail(at, "SETITEM on a ", kind_name(d->kind));
  }

  int64_t as_int(const Obj& o, const char* what, size_t at) {
    if (o->kind != PyObj::Int && o->kind != PyObj::Bool) fail(at, what, " is a ", kind_name(o->kind), ", not an int");
    return o->i;
  }
  std::vector<int64_t> as_ints(const Obj& o, const char* what, size_t at) {
    if (o->kind != PyObj::Tuple && o->kind != PyObj::List) fail(at, what, " is not a tuple");
    std::vector<int64_t> v;
    for (auto& x : o->items) v.push_back(as_int(x, what, at));
    return v;
  }

  Obj rebuild_tensor(const std::vector<Obj>& a, bool v3, size_t at) {
    if (a.size() < 4) fail(at, "tensor rebuilt from ", a.size(), " arguments");
    if (a[0]->kind != PyObj::Storage) fail(at, "tensor rebuilt from a ", kind_name(a[0]->kind), ", not a storage");
    auto t = std::make_shared<TensorRef>();
    t->storage = a[0];
    t->offset = as_int(a[1], "storage offset", at);
    t->sizes = as_ints(a[2], "tensor size", at);
    t->strides = as_ints(a[3], "tensor stride", at);
    if (t->sizes.size() != t->strides.size()) fail(at, "tensor size and stride of different lengths");
    if (v3) {
      if (a.size() < 7 || a[6]->kind != PyObj::Global || !torch_dtype_global(a[6]->s, &t->dtype))
        fail(at, "_rebuild_tensor_v3 with an unsupported dtype");
      t->has_dtype = true;
    }
    auto o = make(PyObj::Tensor);
    o->tensor = t;
    return o;
  }

  Obj reduce(const Obj& fn, const Obj& args, size_t at, int depth = 0) {
    if (depth > 8) fail(at, "tensor rebuilt through more than 8 nested _rebuild_from_type calls");
    if (args->kind != PyObj::Tuple && args->kind != PyObj::List) fail(at, "REDUCE with ", kind_name(args->kind), " arguments");
    if (fn->kind != PyObj::Global) {
      // calling something that is not a known global: keep an opaque result
      return make_str(PyObj::Opaque, fn->kind == PyObj::Opaque ? fn->s : std::string("?"));
    }
    const std::string& g = fn->s;
    const std::vector<Obj>& a = args->items;
    if (g == "collections.OrderedDict" || g == "builtins.dict") {
      auto d = make(PyObj::Dict);
      if (!a.empty() && (a[0]->kind == PyObj::List || a[0]->kind == PyObj::Tuple))
        for (auto& kv : a[0]->items)
          if (kv->kind == PyObj::Tuple && kv->items.size() == 2) d->dict.emplace_back(kv->items[0], kv->items[1]);
      return d;
    }
    if (g == "torch._utils._rebuild_tensor_v2" || g == "torch._utils._rebuild_tensor")
      return rebuild_tensor(a, false, at);
    if (g == "torch._utils._rebuild_tensor_v3") return rebuild_tensor(a, true, at);
    if (g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != PyObj::Tensor) fail(at, "parameter rebuilt from a non-tensor");
      return a[0];
    }
    if (g == "torch._tensor._rebuild_from_type_v2" || g == "torch._tensor._rebuild_from_type") {
      if (a.size() < 3 || a[2]->kind != PyObj::Tuple) fail(at, g, " with bad arguments");
      return reduce(a[0], a[2], at, depth + 1);
    }
    if (g == "torch.Size" || g == "builtins.tuple") {
      auto t = make(PyObj::Tuple);
      if (!a.empty()) t->items = a[0]->items;
      return t;
    }
    if (g == "_codecs.encode" && !a.empty() && a[0]->kind == PyObj::Str) {
      // protocol-2 bytes: latin-1 text back to bytes
      std::string out;
      const std::string& s = a[0]->s;
      for (size_t k = 0; k < s.size(); ++k) {
        auto c = static_cast<uint8_t>(s[k]);
        if (c < 0x80) out += static_cast<char>(c);
        else if (k + 1 < s.size()) out += static_cast<char>(((c & 0x1f) << 6) | (static_cast<uint8_t>(s[++k]) & 0x3f));
      }
      return make_str(PyObj::Bytes, out);
    }
    // anything else: an object we do not construct (no code is executed)
    return make_str(PyObj::Opaque, g);
  }

  Arena& arena_;
  const char* p_;
  size_t n_, pos_;
  std::string what_;
  std::function<Obj(const Obj&)> persistent_;
  std::vector<Obj> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Obj> memo_;
};

size_t element_size(torch::Dtype d) { return c10::elementSize(d); }

// Parses a persistent id ('storage', StorageType, key, location, numel[, view_metadata]).
Obj storage_from_pid(Arena& arena, const Obj& pid, std::map<std::string, Obj>& storages, const std::string& what,
                     uint64_t file_size) {
  auto bad = [&](const std::string& why) {
    return Error(core::str("'", what, "': bad storage reference in the pickle: ", why, " — ", kConvertHint));
  };
  if (pid->kind != PyObj::Tuple || pid->items.size() < 5) throw bad("not a 5-tuple");
  const auto& it = pid->items;
  if (it[0]->kind != PyObj::Str || it[0]->s != "storage") throw bad("type is not 'storage'");
  if (it.size() > 5 && it[5]->kind != PyObj::None) throw bad("storage views (legacy) are not supported");
  torch::Dtype dt;
  if (it[1]->kind != PyObj::Global || !storage_dtype(it[1]->s, &dt))
    throw bad(core::str("unsupported storage type '", it[1]->s, "'"));
  if (it[2]->kind != PyObj::Str) throw bad("key is not a string");
  if (it[4]->kind != PyObj::Int || it[4]->i < 0) throw bad("element count is not a non-negative int");
  const std::string& key = it[2]->s;
  auto found = storages.find(key);
  if (found != storages.end()) {
    if (found->second->storage->dtype != dt) throw bad(core::str("storage '", key, "' used with two dtypes"));
    return found->second;
  }
  uint64_t numel = static_cast<uint64_t>(it[4]->i);
  if (numel > file_size / std::max<size_t>(1, element_size(dt)))
    throw bad(core::str("storage '", key, "' claims ", numel, " elements, more than the ", file_size, "-byte file holds"));
  Obj o = arena.make(PyObj::Storage);
  o->storage = std::make_shared<StorageRef>();
  o->storage->key = key;
  o->storage->dtype = dt;
  o->storage->numel = static_cast<int64_t>(numel);
  storages[key] = o;
  return o;
}

torch::Tensor materialise(const TensorRef& t, const std::string& name, const std::string& what) {
  const StorageRef& s = *t.storage->storage;
  torch::Tensor base = s.data;
  if (!base.defined()) throw Error(core::str("'", what, "': storage '", s.key, "' of tensor '", name, "' has no data"));
  if (t.has_dtype && base.scalar_type() != t.dtype) {
    size_t es = element_size(t.dtype);
    if (base.nbytes() % es)
      throw Error(core::str("'", what, "': tensor '", name, "': storage of ", base.nbytes(), " bytes is not a whole number of ",
                      c10::toString(t.dtype)));
    base = base.view(torch::kUInt8).view(t.dtype);
  }
  int64_t numel = base.numel();
  // the largest element index touched must lie inside the storage
  int64_t extent = t.offset;
  bool empty = false;
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    if (t.sizes[d] < 0 || t.strides[d] < 0)
      throw Error(core::str("'", what, "': tensor '", name, "' has a negative size or stride"));
    if (t.sizes[d] == 0) empty = true;
  }
  if (t.offset < 0) throw Error(core::str("'", what, "': tensor '", name, "' has a negative storage offset"));
  if (!empty) {
    for (size_t d = 0; d < t.sizes.size(); ++d) {
      if (t.strides[d] && (t.sizes[d] - 1) > (numel - extent) / t.strides[d])
        throw Error(core::str("'", what, "': tensor '", name, "' reaches past its storage of ", numel, " elements"));
      extent += (t.sizes[d] - 1) * t.strides[d];
    }
    if (extent >= numel) throw Error(core::str("'", what, "': tensor '", name, "' reaches past its storage of ", numel, " elements"));
  }
  // the view's element count must not overflow, nor dwarf its storage (a zero stride can make a
  // tiny storage claim any shape; a later contiguous copy would allocate all of it)
  uint64_t view_numel = 1;
  const uint64_t cap = std::max<uint64_t>(static_cast<uint64_t>(numel) * 64, uint64_t{1} << 20);
  for (int64_t sz : t.sizes) {
    if (sz == 0) {
      view_numel = 0;
      break;
    }
    if (view_numel > cap / static_cast<uint64_t>(sz))
      throw Error(core::str("'", what, "': tensor '", name, "' claims far more elements than its storage of ", numel,
                            " holds"));
    view_numel *= static_cast<uint64_t>(sz);
  }
  return base.as_strided(t.sizes, t.strides, t.offset);
}

std::string key_name(const Obj& k) {
  if (k->kind == PyObj::Str) return k->s;
  if (k->kind == PyObj::Int) return std::to_string(k->i);
  return core::str("<", kind_name(k->kind), ">");
}

// Finds the dict of tensors inside what was unpickled and turns it into a TensorMap.
TensorMap collect(const Obj& root, const std::string& what) {
  if (root->kind == PyObj::Opaque)
    throw Error(core::str("'", what, "' holds a pickled '", root->s, "' object, not a state dict — ", kConvertHint,
                    " (it loads the object with Python and keeps its state_dict())"));
  if (root->kind != PyObj::Dict)
    throw Error(core::str("'", what, "' holds a ", kind_name(root->kind), ", not a dict of tensors — ", kConvertHint));
  const PyObj* d = root;
  auto count_tensors = [](const PyObj* x) {
    size_t n = 0;
    for (auto& kv : x->dict) n += kv.second->kind == PyObj::Tensor;
    return n;
  };
  if (count_tensors(d) == 0) {
    for (const char* k : {"state_dict", "model_state_dict", "model", "state", "module", "net"}) {
      for (auto& kv : d->dict)
        if (kv.first->kind == PyObj::Str && kv.first->s == k && kv.second->kind == PyObj::Dict &&
            count_tensors(kv.second) > 0) {
          core::log_info("'", what, "': using the state dict under key '", k, "'");
          d = kv.second;
          break;
        }
      if (d != root) break;
    }
  }
  TensorMap out;
  std::vector<std::string> dropped;
  for (auto& [k, v] : d->dict) {
    std::string name = key_name(k);
    if (v->kind != PyObj::Tensor) {
      dropped.push_back(name + " (" + kind_name(v->kind) + ")");
      continue;
    }
    out[name] = materialise(*v->tensor, name, what);
  }
  if (out.empty())
    throw Error(core::str("'", what, "' holds a dict with no tensors", dropped.empty() ? "" : core::str(" (keys: ", dropped[0], ", …)"),
                    " — ", kConvertHint));
  if (!dropped.empty()) {
    std::string list;
    for (size_t i = 0; i < dropped.size() && i < 5; ++i) list += (i ? ", " : "") + dropped[i];
    core::log_warn("'", what, "': ignored ", dropped.size(), " non-tensor entries: ", list,
                   dropped.size() > 5 ? ", …" : "");
  }
  return out;
}

// torch.save writes its zip entries stored (uncompressed). The archive reader allocates what an
// entry's header claims before reading it, which only the file size bounds for stored entries:
// refuse any other compression method before the reader sees the file. Walks the central
// directory the way miniz finds it (the last end-of-central-directory record, zip64 when its
// locator precedes it).
void check_zip_entries_stored(const std::string& path, uint64_t file_size) {
  std::ifstream in(path, std::ios::binary);
  auto read_at = [&](uint64_t off, uint64_t n) {
    if (off > file_size || n > file_size - off)
      throw Error(core::str("'", path, "': zip structure points past the end of the file — ", kConvertHint));
    std::string b(static_cast<size_t>(n), '\0');
    in.seekg(static_cast<std::streamoff>(off));
    in.read(b.data(), static_cast<std::streamsize>(n));
    if (!in) throw Error(core::str("cannot read '", path, "'"));
    return b;
  };
  auto le = [](const std::string& b, size_t off, int k) {
    uint64_t v = 0;
    for (int j = k - 1; j >= 0; --j) v = (v << 8) | static_cast<uint8_t>(b[off + static_cast<size_t>(j)]);
    return v;
  };
  auto bad = [&](const std::string& why) {
    return Error(core::str("'", path, "': not a readable torch zip archive: ", why, " — ", kConvertHint));
  };
  const uint64_t tail_n = std::min<uint64_t>(file_size, 65535 + 22);
  const std::string tail = read_at(file_size - tail_n, tail_n);
  if (tail.size() < 22) throw bad("no end of central directory");
  size_t e = std::string::npos;
  for (size_t i = tail.size() - 22 + 1; i-- > 0;)
    if (le(tail, i, 4) == 0x06054b50) {
      e = i;
      break;
    }
  if (e == std::string::npos) throw bad("no end of central directory");
  const uint64_t eocd = file_size - tail_n + e;
  uint64_t entries = le(tail, e + 10, 2), cdir_size = le(tail, e + 12, 4), cdir_ofs = le(tail, e + 16, 4);
  if (eocd >= 20) {
    std::string loc = read_at(eocd - 20, 20);
    if (le(loc, 0, 4) == 0x07064b50) {  // zip64
      std::string z = read_at(le(loc, 8, 8), 56);
      if (le(z, 0, 4) != 0x06064b50) throw bad("bad zip64 end of central directory");
      if (entries == 0xFFFF) entries = le(z, 32, 8);
      if (cdir_size == 0xFFFFFFFF) cdir_size = le(z, 40, 8);
      if (cdir_ofs == 0xFFFFFFFF) cdir_ofs = le(z, 48, 8);
    }
  }
  const std::string cd = read_at(cdir_ofs, cdir_size);
  size_t p = 0;
  for (uint64_t k = 0; k < entries; ++k) {
    if (cd.size() - p < 46 || le(cd, p, 4) != 0x02014b50) throw bad("corrupt central directory");
    const uint64_t method = le(cd, p + 10, 2);
    const size_t name_n = le(cd, p + 28, 2), extra_n = le(cd, p + 30, 2), comment_n = le(cd, p + 32, 2);
    if (cd.size() - p - 46 < name_n + extra_n + comment_n) throw bad("corrupt central directory");
    if (method != 0)
      throw bad(core::str("entry '", cd.substr(p + 46, name_n), "' is compressed (method ", method,
                          "); torch.save stores entries uncompressed"));
    p += 46 + name_n + extra_n + comment_n;
  }
}

TensorMap load_zip(const std::string& path, uint64_t file_size) {
  check_zip_entries_stored(path, file_size);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    throw Error(core::str("'", path, "': not a readable torch zip archive: ", e.what_without_backtrace()));
  }
  if (!reader->hasRecord("data.pkl"))
    throw Error(core::str("'", path, "': zip archive without data.pkl (a TorchScript module or another zip?) — ", kConvertHint));
  at::DataPtr pkl;
  size_t pkl_size = 0;
  try {
    std::tie(pkl, pkl_size) = reader->getRecord("data.pkl");
  } catch (const c10::Error& e) {
    throw Error(core::str("'", path, "': cannot read data.pkl: ", e.what_without_backtrace()));
  }
  std::map<std::string, Obj> storages;
  Arena arena(path);
  Unpickler u(arena, static_cast<const char*>(pkl.get()), pkl_size, 0, path,
              [&](const Obj& pid) { return storage_from_pid(arena, pid, storages, path, file_size); });
  Obj root = u.load();
  for (auto& [key, o] : storages) {
    StorageRef& s = *o->storage;
    std::string rec = "data/" + key;
    if (!reader->hasRecord(rec)) throw Error(core::str("'", path, "': storage record '", rec, "' is missing"));
    uint64_t want = static_cast<uint64_t>(s.numel) * element_size(s.dtype);
    uint64_t off = reader->getRecordOffset(rec);
    if (off > file_size || want > file_size - off)
      throw Error(core::str("'", path, "': storage '", rec, "' (", want, " bytes) runs past the end of the file"));
    at::DataPtr ptr;
    size_t got = 0;
    try {
      std::tie(ptr, got) = reader->getRecord(rec);
    } catch (const c10::Error& e) {
      throw Error(core::str("'", path, "': cannot read storage '", rec, "': ", e.what_without_backtrace()));
    }
    if (got != want)
      throw Error(core::str("'", path, "': storage '", rec, "' holds ", got, " bytes, the pickle expects ", want));
    s.data = torch::empty({s.numel}, torch::TensorOptions().dtype(s.dtype));
    if (want) std::memcpy(s.data.data_ptr(), ptr.get(), static_cast<size_t>(want));
  }
  return collect(root, path);
}

TensorMap load_legacy(const std::string& path) {
  std::string bytes = core::read_file(path);
  const char* p = bytes.data();
  size_t n = bytes.size();
  auto no_pid = [&](const Obj&) -> Obj {
    throw Error(core::str("'", path, "': unexpected storage reference in the legacy header"));
  };
  Arena arena(path);
  Unpickler magic(arena, p, n, 0, path, no_pid);
  Obj m = magic.load();
  static const unsigned char kMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  if (m->kind != PyObj::BigInt || m->s != std::string(reinterpret_cast<const char*>(kMagic), sizeof kMagic))
    throw Error(core::str("'", path, "' is a pickle but not a torch.save file (no legacy magic number) — ", kConvertHint));
  Unpickler proto(arena, p, n, magic.pos(), path, no_pid);
  Obj pv = proto.load();
  if (pv->kind != PyObj::Int || pv->i != 1001)
    throw Error(core::str("'", path, "': unsupported legacy torch.save protocol version"));
  Unpickler sys(arena, p, n, proto.pos(), path, no_pid);
  Obj info = sys.load();
  if (info->kind == PyObj::Dict)
    for (auto& [k, v] : info->dict)
      if (k->kind == PyObj::Str && k->s == "little_endian" && v->kind == PyObj::Bool && !v->i)
        throw Error(core::str("'", path, "' was written on a big-endian machine — ", kConvertHint));
  std::map<std::string, Obj> storages;
  Unpickler body(arena, p, n, sys.pos(), path,
                 [&](const Obj& pid) { return storage_from_pid(arena, pid, storages, path, n); });
  Obj root = body.load();
  Unpickler keys_u(arena, p, n, body.pos(), path, no_pid);
  Obj keys = keys_u.load();
  if (keys->kind != PyObj::List) throw Error(core::str("'", path, "': legacy storage key list missing"));
  size_t pos = keys_u.pos();
  for (auto& k : keys->items) {
    if (k->kind != PyObj::Str || !storages.count(k->s))
      throw Error(core::str("'", path, "': legacy storage key list names an unknown storage"));
    StorageRef& s = *storages[k->s]->storage;
    if (n - pos < 8) throw Error(core::str("'", path, "': truncated before storage '", s.key, "'"));
    int64_t numel = 0;
    std::memcpy(&numel, p + pos, 8);
    pos += 8;
    if (numel != s.numel)
      throw Error(core::str("'", path, "': storage '", s.key, "' holds ", numel, " elements, the pickle expects ", s.numel));
    uint64_t want = static_cast<uint64_t>(numel) * element_size(s.dtype);
    if (want > n - pos) throw Error(core::str("'", path, "': truncated inside storage '", s.key, "'"));
    s.data = torch::empty({numel}, torch::TensorOptions().dtype(s.dtype));
    if (want) std::memcpy(s.data.data_ptr(), p + pos, static_cast<size_t>(want));
    pos += static_cast<size_t>(want);
  }
  return collect(root, path);
}

}  // namespace

TensorMap load_pth(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(core::str("cannot open weights file '", path, "': ", std::strerror(errno)));
  auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  char magic[4] = {0};
  in.read(magic, 4);
  in.close();
  if (size >= 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0) {
    // torch's archive reader throws c10::Error from any of its calls on a damaged archive
    try {
      return load_zip(path, size);
    } catch (const c10::Error& e) {
      std::string m = e.what_without_backtrace();
      throw Error(core::str("'", path, "': not a readable torch zip archive: ", m.substr(0, m.find('\n')), " — ",
                            kConvertHint));
    }
  }
  if (size >= 2 && static_cast<unsigned char>(magic[0]) == 0x80) return load_legacy(path);
  throw Error(core::str("'", path, "' is neither a torch.save zip archive nor a legacy torch.save pickle — ", kConvertHint));
}

}  // namespace shiftlab::models
