#include "src/common/error.hpp"

#include <cstring>

namespace lt {

void require(bool condition, const std::string& message) {
  if (!condition) throw InputError(message);
}

WriteError WriteError::os(const std::string& path, const std::string& operation, int errnum) {
  return WriteError(path + ": " + operation + " failed: " + std::strerror(errnum));
}

WriteError WriteError::with_context(const std::string& context) const {
  return WriteError(std::string(what()) + "; " + context, ranks);
}

}  // namespace lt
