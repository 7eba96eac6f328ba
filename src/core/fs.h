// File helpers: atomic writes (temp file in the same directory, fsync, rename), SHA-256.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace shiftlab::core {

/// Writes `content` to `path` atomically: readers see the old file or the new one, never half.
void atomic_write(const std::string& path, const std::string& content);
/// Atomic write where `writer(tmp_path)` produces the file; on any exception the temp file is
/// removed and `path` is untouched.
void atomic_write_with(const std::string& path, const std::function<void(const std::string&)>& writer);
/// fsync a file or directory by path (errors are thrown).
void fsync_path(const std::string& path);

/// Hex SHA-256 of a file's bytes (streams; throws Error naming the file if unreadable).
std::string sha256_file(const std::string& path);
/// Hex SHA-256 of a byte string.
std::string sha256_bytes(const std::string& data);

/// Reads a whole file (throws Error naming it).
std::string read_file(const std::string& path);

/// An exclusive advisory lock (flock) on `path`, created when missing, held by this process until
/// the object is destroyed or the process ends (a killed process releases it; child processes do
/// not inherit it). The lock file keeps the holder's pid.
class FileLock {
 public:
  /// Takes the lock; when another process holds it, throws Error "<what> is in use by another
  /// process (pid N, lock file PATH)" (`what` names the thing, e.g. "sweep directory 'x'").
  static FileLock acquire(const std::string& path, const std::string& what);
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace shiftlab::core
