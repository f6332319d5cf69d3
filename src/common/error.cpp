#include "src/common/error.hpp"

namespace lt {

void require(bool condition, const std::string& message) {
  if (!condition) throw InputError(message);
}

}  // namespace lt
