#pragma once
// Small RAII and checking helpers over the HDF5 C API, for io/ only (nothing outside io/ calls HDF5).
#include <hdf5.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace lt::h5 {

// Debian's parallel HDF5 is built without thread safety: every entry point of io/ that calls HDF5 holds
// this lock, so the prefetching loader's thread and the main thread (checkpoints) never overlap in it.
std::recursive_mutex& library_mutex();

// Turns off HDF5's own error-stack printing once per process: errors are ours to report, in one line.
void silence_library_errors();

// An hid_t closed by the right H5?close when it goes out of scope.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      closer_ = other.closer_;
      other.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  // Gives up ownership: the caller closes.
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// HDF5 never writes an output file itself: a file is built in memory (the core driver, no backing store)
// and its bytes are written by write_file_atomically (io/atomic_file.hpp), through PATH.tmp, fsync and
// rename. So a full disk, a missing permission or an I/O error is an OS error in our own code, reported
// as a WriteError with its errno, and never a failure inside libhdf5: 1.10.8 cannot close a file whose
// flush failed (its metadata cache is left in a state where every later flush fails too), and the file
// ID it keeps open then crashes the library's own clean-up at MPI_Finalize.
//
// Creates `path`: `fill(file, path)` writes the contents into a file in memory, which is then written
// whole (commit_file). `expected_bytes`, the file's size if known, saves regrowing the memory.
void create_file_atomically(const std::string& path, const std::function<void(hid_t, const std::string&)>& fill,
                            size_t expected_bytes = 0);

// A new, empty HDF5 file in memory (1.10 format), for commit_file. Its bytes are taken when it closes:
// H5Fget_file_image of 1.10.8 returns a version-3 superblock whose status flags are cleared but whose
// checksum is not recomputed (no reader opens it), while the close writes the superblock right.
class MemoryFile {
 public:
  explicit MemoryFile(size_t expected_bytes = 0);
  MemoryFile(MemoryFile&&) noexcept;
  MemoryFile& operator=(MemoryFile&&) noexcept;
  ~MemoryFile();
  hid_t get() const { return file_.get(); }
  bool valid() const { return file_.valid(); }
  // Flushes and closes the file (every object in it must be closed by now) and returns its bytes.
  std::vector<char> close_to_image(const std::string& where);

  struct Image;  // the memory the core driver fills, kept past the close

 private:
  std::unique_ptr<Image> image_;  // declared first: outlives file_
  Handle file_;
};

// The end of create_file_atomically, for a file filled by the caller: the file is closed (in memory: the
// close cannot fail on a disk) and its bytes written to `path` atomically; WriteError naming the file and
// the OS error otherwise.
void commit_file(MemoryFile file, const std::string& path);

// A dataset that grows as rows come (predictions files, frame after frame): chunked by `chunk_rows`, unlimited
// first dimension, Fletcher32-checksummed, no times. `columns` 0: rank 1; else (rows, columns).
class Appender {
 public:
  Appender() = default;
  Appender(hid_t file, const std::string& name, hid_t file_type, hsize_t columns, hsize_t chunk_rows,
           const std::string& where);
  void append(hid_t mem_type, const void* data, hsize_t rows);
  hsize_t rows() const { return rows_; }

 private:
  Handle dataset_;
  hsize_t columns_ = 0, rows_ = 0;
  std::string where_;
};

// Reads every dataset in the file in full (so that every checksum is verified) and, with require_finite,
// checks every floating-point value is finite; InputError naming the file and dataset otherwise.
void read_every_dataset(hid_t file, const std::string& where, bool require_finite = false);

// Each throws InputError("<where>: <what>") when HDF5 reports a failure.
Handle open_file_readonly(const std::string& path);
Handle open_dataset(hid_t file, const std::string& name, const std::string& where);
bool has_link(hid_t file, const std::string& name);

// Dimensions of a dataset, after checking its rank and element kind (H5T_FLOAT/H5T_INTEGER/H5T_STRING,
// byte size, signedness for integers).
std::vector<hsize_t> checked_dims(hid_t dataset, int rank, H5T_class_t type_class, size_t type_size, bool is_signed,
                                  const std::string& where);

// Chunked dataset with an unlimited first dimension (so empty ones are legal), Fletcher32-checksummed
// unless `checksum` is false.
void write_array(hid_t file, const std::string& name, hid_t mem_type, hid_t file_type, const std::vector<hsize_t>& dims,
                 hsize_t chunk_rows, const void* data, const std::string& where, bool checksum = true);
// Strings are written fixed-length (NUL-padded to the longest value, UTF-8), datasets of them
// Fletcher32-checksummed. libhdf5 keeps variable-length strings in a global heap that has no checksum,
// and a damaged one can hang its reader (H5HG_read, found by fuzzing the shard and checkpoint readers),
// so readers take them only where a file's schema version says it was written so (`Strings::any`: the
// version 1 datasets and checkpoints); elsewhere a variable-length string is refused before it is read.
enum class Strings { fixed_only, any };
void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values,
                   const std::string& where);

// Reads rows [first, first+count) of a dataset of rank 1 or 2 into `out`.
void read_rows(hid_t dataset, hid_t mem_type, hsize_t first, hsize_t count, void* out, const std::string& where);
std::vector<std::string> read_strings(hid_t dataset, const std::string& where, Strings strings = Strings::fixed_only);

void write_attr_string(hid_t object, const std::string& name, const std::string& value, const std::string& where);
void write_attr_int(hid_t object, const std::string& name, int64_t value, const std::string& where);
void write_attr_strings(hid_t object, const std::string& name, const std::vector<std::string>& values,
                        const std::string& where);
std::string read_attr_string(hid_t object, const std::string& name, const std::string& where,
                             Strings strings = Strings::fixed_only);
int64_t read_attr_int(hid_t object, const std::string& name, const std::string& where);
bool has_attr(hid_t object, const std::string& name);

}  // namespace lt::h5
