#include "core/fs.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace shiftlab::core {

namespace fs = std::filesystem;

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(str("cannot open '", path, "' to sync: ", std::strerror(errno)));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw Error(str("cannot sync '", path, "': ", std::strerror(err)));
}

static std::string temp_name(const std::string& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream os;
  os << path << ".tmp." << ::getpid() << "." << std::hex << (rng() & 0xffffff);
  return os.str();
}

void atomic_write_with(const std::string& path, const std::function<void(const std::string&)>& writer) {
  std::string tmp = temp_name(path);
  try {
    writer(tmp);
    fsync_path(tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error(str("cannot move '", tmp, "' to '", path, "': ", ec.message()));
    auto dir = fs::path(path).parent_path();
    fsync_path(dir.empty() ? std::string(".") : dir.string());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void atomic_write(const std::string& path, const std::string& content) {
  atomic_write_with(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(str("cannot write '", path, "': ", std::strerror(errno)));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) throw Error(str("cannot write '", path, "' (disk full?)"));
  });
}

namespace {
struct Sha {
  EVP_MD_CTX* ctx;
  Sha() : ctx(EVP_MD_CTX_new()) {
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) throw Error("SHA-256 init failed");
  }
  ~Sha() { EVP_MD_CTX_free(ctx); }
  void update(const void* p, size_t n) { EVP_DigestUpdate(ctx, p, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    static const char* d = "0123456789abcdef";
    std::string s;
    for (unsigned i = 0; i < len; ++i) {
      s += d[md[i] >> 4];
      s += d[md[i] & 15];
    }
    return s;
  }
};
}  // namespace

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(str("cannot read '", path, "'"));
  Sha sha;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) sha.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw Error(str("error reading '", path, "'"));
  return sha.hex();
}

std::string sha256_bytes(const std::string& data) {
  Sha sha;
  sha.update(data.data(), data.size());
  return sha.hex();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(str("cannot read '", path, "'"));
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

FileLock FileLock::acquire(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(str("cannot open lock file '", path, "': ", std::strerror(errno)));
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    std::string holder;
    char buf[32] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) holder = std::string(buf, static_cast<size_t>(n));
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd);
    if (err != EWOULDBLOCK) throw Error(str("cannot lock '", path, "': ", std::strerror(err)));
    throw Error(str(what, " is in use by another process (", holder.empty() ? std::string("pid unknown") : "pid " + holder,
                    ", lock file ", path, "); wait for it to finish, or stop it first"));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) [[maybe_unused]] auto w = ::pwrite(fd, pid.data(), pid.size(), 0);
  return FileLock(fd);
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace shiftlab::core
