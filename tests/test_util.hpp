#pragma once
// Helpers shared by the test files.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "src/common/error.hpp"

namespace lt::testing {

// Points of (P, 4) x, y, z, i inside a box x, y, z, dx, dy, dz, heading (z at the centre).
inline int64_t points_in_box(const std::vector<float>& points, const float* box, float margin = 0.f) {
  const float c = std::cos(box[6]), s = std::sin(box[6]);
  int64_t count = 0;
  for (size_t i = 0; i + 3 < points.size(); i += 4) {
    const float dx = points[i] - box[0], dy = points[i + 1] - box[1], dz = points[i + 2] - box[2];
    const float along = dx * c + dy * s, across = -dx * s + dy * c;
    if (std::abs(along) <= box[3] / 2 + margin && std::abs(across) <= box[4] / 2 + margin &&
        std::abs(dz) <= box[5] / 2 + margin)
      ++count;
  }
  return count;
}

// A fresh empty directory under the system temp dir.
inline std::string fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("lidartrain_test_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline void write_bytes(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), std::streamsize(size));
}

inline std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The message of the `Error` that `f` throws, or "" when it throws none.
template <class Error>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
inline std::string input_error_of(const std::function<void()>& f) {
  return error_of<InputError>(f);
}

}  // namespace lt::testing
