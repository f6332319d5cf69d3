#pragma once
// Files that exist whole or not at all (DESIGN.md §10). An output is written to PATH.tmp, fsynced,
// renamed to PATH and its directory fsynced, so PATH is always a complete file, durable once this
// returns. Every failure of the file system (full disk, no permission, I/O error) is a WriteError that
// names the file, the operation and the OS error, and leaves no PATH.tmp behind.
#include <cstddef>
#include <string>

namespace lt {

void write_file_atomically(const std::string& path, const void* data, size_t size);
inline void write_file_atomically(const std::string& path, const std::string& bytes) {
  write_file_atomically(path, bytes.data(), bytes.size());
}
// The same for text (JSON, INI, label_2, LATEST).
inline void write_text_file_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, text);
}

// `dir` and its parents; WriteError naming `dir` and the OS error ("Permission denied", "Read-only file
// system") when one cannot be made, InputError when a file is in the way.
void create_directories(const std::string& dir, const std::string& what);

// A file that grows line by line (metrics.jsonl): each append is written in full or a WriteError.
class AppendFile {
 public:
  AppendFile() = default;
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  // Opens (creating it, emptied first when `truncate`); WriteError when it cannot be.
  void open(const std::string& path, bool truncate);
  void append(const std::string& text);
  bool is_open() const { return fd_ >= 0; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace lt
