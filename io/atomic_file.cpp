#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "src/common/error.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {
// Writes all of [data, data + size) to `fd`, through short writes and signals; errno on failure.
bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      if (written == 0) errno = EIO;
      return false;
    }
    data += written;
    size -= size_t(written);
  }
  return true;
}

void sync_directory(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  const std::string dir = parent.empty() ? "." : parent.string();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw WriteError::os(dir, "open (to sync the directory)", errno);
  const int status = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // Some file systems cannot sync a directory (EINVAL): the rename is as durable as they make it.
  if (status != 0 && error != EINVAL) throw WriteError::os(dir, "fsync", error);
}
}  // namespace

void write_file_atomically(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw WriteError::os(tmp, "create", errno);
  const char* failed = nullptr;
  int error = 0;
  if (!write_all(fd, static_cast<const char*>(data), size))
    failed = "write", error = errno;
  else if (::fsync(fd) != 0 && errno != EINVAL)  // EINVAL: a special file such as /dev/full (tests)
    failed = "fsync", error = errno;
  // close() can report a delayed write error (NFS): it counts as a failed write.
  if (::close(fd) != 0 && !failed) failed = "close", error = errno;
  if (failed) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw WriteError::os(tmp, failed, error);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rename_error = errno;
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw WriteError::os(path, "rename into place", rename_error);
  }
  sync_directory(path);
}

void create_directories(const std::string& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec && ec != std::errc::file_exists && ec != std::errc::not_a_directory)
    throw WriteError::os(dir, "creating the " + what, ec.value());
  require(fs::is_directory(dir, ec), dir + ": cannot create the " + what + " (a file is in the way)");
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::open(const std::string& path, bool truncate) {
  if (fd_ >= 0) ::close(fd_);
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
  if (fd_ < 0) throw WriteError::os(path, "open for writing", errno);
}

void AppendFile::append(const std::string& text) {
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  if (write_all(fd_, text.data(), text.size())) return;
  const int error = errno;
  // The part written goes, so the file keeps whole lines (should that fail too, a resumed run's
  // trim_metrics drops a line without its end).
  if (before >= 0) {
    [[maybe_unused]] const int truncated = ::ftruncate(fd_, before);
  }
  throw WriteError::os(path_, "write", error);
}

}  // namespace lt
