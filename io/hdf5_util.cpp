#include "io/hdf5_util.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "io/atomic_file.hpp"
#include "src/common/error.hpp"

namespace lt::h5 {

std::recursive_mutex& library_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

void silence_library_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

namespace {
void check(herr_t status, const std::string& where, const std::string& what) {
  require(status >= 0, where + ": " + what);
}
Handle make(hid_t id, Handle::Closer closer, const std::string& where, const std::string& what) {
  require(id >= 0, where + ": " + what);
  return Handle(id, closer);
}
// A chunked dataset with an unlimited first dimension (so empty ones are legal), Fletcher32-checksummed
// when `checksum`, and no modification times: the same data gives the same bytes (reruns and rank counts
// compare equal).
Handle create_chunked_dataset(hid_t file, const std::string& name, hid_t file_type, const std::vector<hsize_t>& dims,
                              hsize_t chunk_rows, bool checksum, const std::string& where) {
  const int rank = int(dims.size());
  std::vector<hsize_t> max_dims = dims;
  max_dims[0] = H5S_UNLIMITED;
  std::vector<hsize_t> chunk = dims;
  chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(chunk_rows, std::max<hsize_t>(dims[0], 1)));
  Handle space(H5Screate_simple(rank, dims.data(), max_dims.data()), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  check(H5Pset_chunk(dcpl.get(), rank, chunk.data()), where, "cannot chunk " + name);
  if (checksum) check(H5Pset_fletcher32(dcpl.get()), where, "cannot checksum " + name);
  check(H5Pset_obj_track_times(dcpl.get(), false), where, "cannot set " + name);
  return make(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose,
              where, "cannot create dataset " + name);
}
Handle vlen_string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

// Fixed-length UTF-8 strings of `size` bytes (at least 1: HDF5 has no empty type), NUL-padded.
Handle fixed_string_type(size_t size) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<size_t>(size, 1));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

size_t longest(const std::vector<std::string>& values) {
  size_t size = 0;
  for (const auto& value : values) size = std::max(size, value.size());
  return size;
}

// The values NUL-padded to `size` bytes each, one after another.
std::vector<char> padded(const std::vector<std::string>& values, size_t size) {
  std::vector<char> bytes(values.size() * size, '\0');
  for (size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), bytes.begin() + i * size);
  return bytes;
}

// Each `size`-byte value up to its first NUL.
std::vector<std::string> unpadded(const std::vector<char>& bytes, size_t size) {
  std::vector<std::string> values;
  for (size_t at = 0; at < bytes.size(); at += size) {
    const auto begin = bytes.begin() + std::ptrdiff_t(at);
    values.emplace_back(begin, std::find(begin, begin + std::ptrdiff_t(size), '\0'));
  }
  return values;
}

void check_string_form(hid_t file_type, Strings strings, const std::string& what) {
  require(strings == Strings::any || H5Tis_variable_str(file_type) == 0,
          what + " is a variable-length string, which only version 1 files hold");
}
}  // namespace

// The core driver's memory, allocated through these callbacks so that the buffer it frees at the file's
// close (H5FD_FILE_IMAGE_OP_FILE_CLOSE), which then holds the finished file, is kept instead.
struct MemoryFile::Image {
  void* closed_bytes = nullptr;
  ~Image() { std::free(closed_bytes); }
  static void* allocate(size_t size, H5FD_file_image_op_t, void*) { return std::malloc(size); }
  static void* copy(void* to, const void* from, size_t size, H5FD_file_image_op_t, void*) {
    return std::memcpy(to, from, size);
  }
  static void* reallocate(void* bytes, size_t size, H5FD_file_image_op_t, void*) { return std::realloc(bytes, size); }
  static herr_t release(void* bytes, H5FD_file_image_op_t op, void* self) {
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE) {
      auto* image = static_cast<Image*>(self);
      std::free(image->closed_bytes);
      image->closed_bytes = bytes;
    } else {
      std::free(bytes);
    }
    return 0;
  }
  static void* share(void* self) { return self; }
  static herr_t unshare(void*) { return 0; }
};

MemoryFile::MemoryFile(size_t expected_bytes) : image_(std::make_unique<Image>()) {
  silence_library_errors();
  // The memory grows in steps of `increment`: one step when the size is known, else 16 MiB.
  const size_t increment = expected_bytes > 0 ? expected_bytes + (expected_bytes >> 4) + (64 << 10) : size_t(16) << 20;
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  check(H5Pset_fapl_core(fapl.get(), increment, /*backing_store=*/false), "(memory)", "cannot set the core driver");
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), "(memory)", "cannot set the file format");
  H5FD_file_image_callbacks_t callbacks = {Image::allocate, Image::copy,    Image::reallocate, Image::release,
                                           Image::share,    Image::unshare, image_.get()};
  check(H5Pset_file_image_callbacks(fapl.get(), &callbacks), "(memory)", "cannot set the file image callbacks");
  // A name of its own: the core driver takes two files of one name for the same file.
  static std::atomic<uint64_t> files_made{0};
  const std::string name = "lidartrain-in-memory-" + std::to_string(files_made++) + ".h5";
  file_ = make(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, "(memory)",
               "cannot create an HDF5 file in memory");
}

MemoryFile::MemoryFile(MemoryFile&&) noexcept = default;
MemoryFile& MemoryFile::operator=(MemoryFile&& other) noexcept {
  file_.reset();  // closed while its memory's keeper is still ours
  image_ = std::move(other.image_);
  file_ = std::move(other.file_);
  return *this;
}
MemoryFile::~MemoryFile() {
  file_.reset();
}

std::vector<char> MemoryFile::close_to_image(const std::string& where) {
  check(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), where, "cannot flush the file in memory");
  const ssize_t size = H5Fget_file_image(file_.get(), nullptr, 0);  // its end of allocation
  require(size > 0, where + ": cannot size the file in memory");
  check(H5Fclose(file_.release()), where, "cannot close the file in memory");
  require(image_->closed_bytes != nullptr, where + ": an object of the file in memory is still open (a bug)");
  const char* bytes = static_cast<const char*>(image_->closed_bytes);
  return std::vector<char>(bytes, bytes + size);
}

void commit_file(MemoryFile file, const std::string& path) {
  const std::vector<char> image = file.close_to_image(path);
  write_file_atomically(path, image.data(), image.size());
}

void create_file_atomically(const std::string& path, const std::function<void(hid_t, const std::string&)>& fill,
                            size_t expected_bytes) {
  MemoryFile file(expected_bytes);
  fill(file.get(), path);
  commit_file(std::move(file), path);
}

Appender::Appender(hid_t file, const std::string& name, hid_t file_type, hsize_t columns, hsize_t chunk_rows,
                   const std::string& where)
    : columns_(columns), where_(where + ": /" + name) {
  const int rank = columns > 0 ? 2 : 1;
  const hsize_t dims[2] = {0, columns}, max_dims[2] = {H5S_UNLIMITED, columns};
  const hsize_t chunk[2] = {std::max<hsize_t>(chunk_rows, 1), columns};
  Handle space(H5Screate_simple(rank, dims, max_dims), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  check(H5Pset_chunk(dcpl.get(), rank, chunk), where_, "cannot chunk");
  check(H5Pset_fletcher32(dcpl.get()), where_, "cannot checksum");
  check(H5Pset_obj_track_times(dcpl.get(), false), where_, "cannot set");
  dataset_ = make(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                  H5Dclose, where_, "cannot create dataset");
}

void Appender::append(hid_t mem_type, const void* data, hsize_t rows) {
  if (rows == 0) return;
  const int rank = columns_ > 0 ? 2 : 1;
  const hsize_t dims[2] = {rows_ + rows, columns_}, start[2] = {rows_, 0}, count[2] = {rows, columns_};
  check(H5Dset_extent(dataset_.get(), dims), where_, "cannot extend");
  Handle file_space(H5Dget_space(dataset_.get()), H5Sclose);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), where_, "bad selection");
  Handle memory_space(H5Screate_simple(rank, count, nullptr), H5Sclose);
  check(H5Dwrite(dataset_.get(), mem_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data), where_,
        "cannot write");
  rows_ += rows;
}

void read_every_dataset(hid_t file, const std::string& where, bool require_finite) {
  struct Visit {
    std::string where, failed;
    bool require_finite;
  } visit{where, "", require_finite};
  const auto callback = [](hid_t object, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    auto* v = static_cast<Visit*>(data);
    if (info->type != H5O_TYPE_DATASET) return 0;
    const hid_t dataset = H5Dopen2(object, name, H5P_DEFAULT);
    if (dataset < 0) return v->failed = std::string(name) + ": cannot open", -1;
    const hid_t type = H5Dget_type(dataset);
    const hid_t space = H5Dget_space(dataset);
    const hssize_t elements = H5Sget_simple_extent_npoints(space);
    const bool floating = H5Tget_class(type) == H5T_FLOAT;
    const size_t count = size_t(std::max<hssize_t>(elements, 0));
    std::vector<char> buffer(count * (floating ? sizeof(double) : H5Tget_size(type)) + 1);
    const herr_t status = elements > 0 ? H5Dread(dataset, floating ? H5T_NATIVE_DOUBLE : type, H5S_ALL, H5S_ALL,
                                                 H5P_DEFAULT, buffer.data())
                                       : 0;
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dataset);
    if (status < 0) return v->failed = std::string(name) + ": read failed (checksum mismatch or truncated file)", -1;
    if (floating && v->require_finite) {
      const auto* values = reinterpret_cast<const double*>(buffer.data());
      for (size_t i = 0; i < count; ++i)
        if (!std::isfinite(values[i]))
          return v->failed = std::string(name) + ": holds non-finite values (element " + std::to_string(i) + " is " +
                             std::to_string(values[i]) + ")",
                 -1;
    }
    return 0;
  };
  const herr_t status = H5Ovisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, callback, &visit);
  require(status >= 0 && visit.failed.empty(),
          where + ": " + (visit.failed.empty() ? "cannot walk the file's objects (corrupt metadata)" : visit.failed));
}

Handle open_file_readonly(const std::string& path) {
  silence_library_errors();
  return make(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path,
              "cannot open as HDF5 (not an HDF5 file, truncated or corrupt)");
}

bool has_link(hid_t file, const std::string& name) {
  return H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0;
}

Handle open_dataset(hid_t file, const std::string& name, const std::string& where) {
  require(has_link(file, name), where + ": missing dataset " + name);
  return make(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, where, "cannot open dataset " + name);
}

std::vector<hsize_t> checked_dims(hid_t dataset, int rank, H5T_class_t type_class, size_t type_size, bool is_signed,
                                  const std::string& where) {
  Handle type(H5Dget_type(dataset), H5Tclose);
  require(type.valid() && H5Tget_class(type.get()) == type_class, where + ": wrong element type");
  if (type_class != H5T_STRING) {
    require(H5Tget_size(type.get()) == type_size, where + ": wrong element size " +
                                                      std::to_string(H5Tget_size(type.get())) + ", expected " +
                                                      std::to_string(type_size));
  }
  if (type_class == H5T_INTEGER) {
    require((H5Tget_sign(type.get()) == H5T_SGN_2) == is_signed, where + ": wrong integer signedness");
  }
  Handle space(H5Dget_space(dataset), H5Sclose);
  require(space.valid() && H5Sget_simple_extent_ndims(space.get()) == rank,
          where + ": expected rank " + std::to_string(rank));
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

void write_array(hid_t file, const std::string& name, hid_t mem_type, hid_t file_type, const std::vector<hsize_t>& dims,
                 hsize_t chunk_rows, const void* data, const std::string& where, bool checksum) {
  Handle dataset = create_chunked_dataset(file, name, file_type, dims, chunk_rows, checksum, where);
  if (dims[0] > 0) {
    check(H5Dwrite(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), where, "cannot write " + name);
  }
}

void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values,
                   const std::string& where) {
  const size_t size = std::max<size_t>(longest(values), 1);
  require(size <= 4096, where + ": " + name + ": a string of " + std::to_string(size) + " bytes (at most 4096)");
  Handle type = fixed_string_type(size);
  const std::vector<char> bytes = padded(values, size);
  write_array(file, name, type.get(), type.get(), {hsize_t(values.size())}, 1024, bytes.data(), where);
}

void read_rows(hid_t dataset, hid_t mem_type, hsize_t first, hsize_t count, void* out, const std::string& where) {
  if (count == 0) return;
  Handle file_space(H5Dget_space(dataset), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(file_space.get());
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(file_space.get(), dims.data(), nullptr);
  std::vector<hsize_t> start(rank, 0), block = dims;
  start[0] = first;
  block[0] = count;
  require(first + count <= dims[0], where + ": rows out of range");
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, block.data(), nullptr), where,
        "bad selection");
  Handle mem_space(H5Screate_simple(rank, block.data(), nullptr), H5Sclose);
  check(H5Dread(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out), where,
        "read failed (checksum mismatch or truncated file)");
}

std::vector<std::string> read_strings(hid_t dataset, const std::string& where, Strings strings) {
  const auto dims = checked_dims(dataset, 1, H5T_STRING, 0, false, where);
  Handle file_type(H5Dget_type(dataset), H5Tclose);
  check_string_form(file_type.get(), strings, where);
  if (H5Tis_variable_str(file_type.get()) > 0) {
    Handle type = vlen_string_type();
    std::vector<char*> pointers(dims[0], nullptr);
    if (dims[0] > 0) {
      check(H5Dread(dataset, type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), where,
            "read failed (checksum mismatch or truncated file)");
    }
    std::vector<std::string> values;
    for (char* p : pointers) values.emplace_back(p ? p : "");
    if (dims[0] > 0) {
      Handle space(H5Dget_space(dataset), H5Sclose);
      H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, pointers.data());
    }
    return values;
  }
  const size_t size = H5Tget_size(file_type.get());
  require(size > 0 && size <= 4096, where + ": strings of " + std::to_string(size) + " bytes");
  require(dims[0] <= (size_t(1) << 30) / size, where + ": " + std::to_string(dims[0]) + " strings is too many");
  std::vector<char> bytes(dims[0] * size);
  if (dims[0] > 0) {
    check(H5Dread(dataset, file_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), where,
          "read failed (checksum mismatch or truncated file)");
  }
  return unpadded(bytes, size);
}

void write_attr_string(hid_t object, const std::string& name, const std::string& value, const std::string& where) {
  Handle type = fixed_string_type(value.size());
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr = make(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                     where, "cannot create attribute " + name);
  const std::vector<char> bytes = padded({value}, std::max<size_t>(value.size(), 1));
  check(H5Awrite(attr.get(), type.get(), bytes.data()), where, "cannot write attribute " + name);
}

void write_attr_int(hid_t object, const std::string& name, int64_t value, const std::string& where) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr = make(H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                     where, "cannot create attribute " + name);
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), where, "cannot write attribute " + name);
}

void write_attr_strings(hid_t object, const std::string& name, const std::vector<std::string>& values,
                        const std::string& where) {
  const size_t size = std::max<size_t>(longest(values), 1);
  Handle type = fixed_string_type(size);
  const hsize_t count = values.size();
  Handle space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  Handle attr = make(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                     where, "cannot create attribute " + name);
  const std::vector<char> bytes = padded(values, size);
  check(H5Awrite(attr.get(), type.get(), bytes.data()), where, "cannot write attribute " + name);
}

bool has_attr(hid_t object, const std::string& name) {
  return H5Aexists(object, name.c_str()) > 0;
}

std::string read_attr_string(hid_t object, const std::string& name, const std::string& where, Strings strings) {
  require(has_attr(object, name), where + ": missing attribute " + name);
  Handle attr = make(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose, where, "cannot open attribute " + name);
  Handle file_type(H5Aget_type(attr.get()), H5Tclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  require(H5Tget_class(file_type.get()) == H5T_STRING && H5Sget_simple_extent_npoints(space.get()) == 1,
          where + ": attribute " + name + " is not a string");
  check_string_form(file_type.get(), strings, where + ": attribute " + name);
  if (H5Tis_variable_str(file_type.get()) > 0) {
    Handle type = vlen_string_type();
    char* text = nullptr;
    check(H5Aread(attr.get(), type.get(), &text), where, "cannot read attribute " + name);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t size = H5Tget_size(file_type.get());
  require(size > 0 && size <= (size_t(1) << 26),
          where + ": attribute " + name + " of " + std::to_string(size) + " bytes");
  std::vector<char> bytes(size, '\0');
  // In the file's own type: HDF5 converts no character set into another (h5py writes ASCII ones).
  check(H5Aread(attr.get(), file_type.get(), bytes.data()), where, "cannot read attribute " + name);
  return unpadded(bytes, size).front();
}

int64_t read_attr_int(hid_t object, const std::string& name, const std::string& where) {
  require(has_attr(object, name), where + ": missing attribute " + name);
  Handle attr = make(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose, where, "cannot open attribute " + name);
  Handle file_type(H5Aget_type(attr.get()), H5Tclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  require(H5Tget_class(file_type.get()) == H5T_INTEGER && H5Sget_simple_extent_npoints(space.get()) == 1,
          where + ": attribute " + name + " is not an integer");
  int64_t value = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), where, "cannot read attribute " + name);
  return value;
}

}  // namespace lt::h5
