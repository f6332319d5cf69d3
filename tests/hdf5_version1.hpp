#pragma once
// Turns a dataset shard or checkpoint of this version into the version 1 form earlier lidartrain wrote:
// every string attribute (of the root and its groups) and every string dataset of the root
// variable-length, and version = 1. The readers of version 2 must still read such files.
#include <hdf5.h>

#include <string>
#include <vector>

namespace lt::testing {

inline hid_t vlen_string() {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return type;
}

// The fixed-length strings of an attribute or dataset (`read` fills `size`·count bytes).
inline std::vector<std::string> split_fixed(const std::vector<char>& bytes, size_t size) {
  std::vector<std::string> values;
  for (size_t at = 0; at < bytes.size(); at += size) {
    std::string value(bytes.begin() + std::ptrdiff_t(at), bytes.begin() + std::ptrdiff_t(at + size));
    values.push_back(value.substr(0, value.find('\0')));
  }
  return values;
}

inline void attributes_to_vlen(hid_t object) {
  std::vector<std::string> names;
  H5Aiterate2(
      object, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &names);
  for (const std::string& name : names) {
    const hid_t attr = H5Aopen(object, name.c_str(), H5P_DEFAULT);
    const hid_t type = H5Aget_type(attr);
    const hid_t space = H5Aget_space(attr);
    if (H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) == 0) {
      const size_t size = H5Tget_size(type);
      std::vector<char> bytes(size * size_t(H5Sget_simple_extent_npoints(space)));
      H5Aread(attr, type, bytes.data());
      const std::vector<std::string> values = split_fixed(bytes, size);
      const hid_t copy = H5Scopy(space);
      H5Aclose(attr);
      H5Adelete(object, name.c_str());
      const hid_t vlen = vlen_string();
      const hid_t created = H5Acreate2(object, name.c_str(), vlen, copy, H5P_DEFAULT, H5P_DEFAULT);
      std::vector<const char*> pointers;
      for (const auto& value : values) pointers.push_back(value.c_str());
      H5Awrite(created, vlen, pointers.data());
      H5Aclose(created);
      H5Tclose(vlen);
      H5Sclose(copy);
    } else {
      H5Aclose(attr);
    }
    H5Tclose(type);
    H5Sclose(space);
  }
}

// Sets the file's root attribute `version` (what an older lidartrain wrote) and returns the one it had.
inline int64_t set_version(const std::string& path, int64_t version) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const hid_t attr = H5Aopen(file, "version", H5P_DEFAULT);
  int64_t old = 0;
  H5Aread(attr, H5T_NATIVE_INT64, &old);
  H5Awrite(attr, H5T_NATIVE_INT64, &version);
  H5Aclose(attr);
  H5Fclose(file);
  return old;
}

inline void rewrite_as_version1(const std::string& path) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  attributes_to_vlen(file);
  for (const char* group : {"optimizer", "model", "buffers"}) {
    if (H5Lexists(file, group, H5P_DEFAULT) <= 0) continue;
    const hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    attributes_to_vlen(g);
    H5Gclose(g);
  }
  const int64_t one = 1;
  const hid_t version = H5Aopen(file, "version", H5P_DEFAULT);
  H5Awrite(version, H5T_NATIVE_INT64, &one);
  H5Aclose(version);
  if (H5Lexists(file, "frame_ids", H5P_DEFAULT) > 0) {
    const hid_t dataset = H5Dopen2(file, "frame_ids", H5P_DEFAULT);
    const hid_t type = H5Dget_type(dataset);
    const hid_t space = H5Dget_space(dataset);
    hsize_t count = 0;
    H5Sget_simple_extent_dims(space, &count, nullptr);
    const size_t size = H5Tget_size(type);
    std::vector<char> bytes(size * count);
    if (count > 0) H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
    const std::vector<std::string> values = split_fixed(bytes, size);
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(dataset);
    H5Ldelete(file, "frame_ids", H5P_DEFAULT);
    const hsize_t max = H5S_UNLIMITED, chunk = 1024;
    const hid_t vspace = H5Screate_simple(1, &count, &max);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    const hid_t vlen = vlen_string();
    const hid_t created = H5Dcreate2(file, "frame_ids", vlen, vspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    std::vector<const char*> pointers;
    for (const auto& value : values) pointers.push_back(value.c_str());
    if (count > 0) H5Dwrite(created, vlen, H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data());
    H5Dclose(created);
    H5Tclose(vlen);
    H5Pclose(dcpl);
    H5Sclose(vspace);
  }
  H5Fclose(file);
}

}  // namespace lt::testing
