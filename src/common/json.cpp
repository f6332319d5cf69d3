#include "src/common/json.hpp"

#include <cmath>
#include <cstdio>

#include "src/common/error.hpp"

namespace lt {

std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void JsonWriter::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_in_scope_.empty()) {
    if (!first_in_scope_.back()) out_ += ',';
    first_in_scope_.back() = false;
  }
}

JsonWriter& JsonWriter::begin_object() {
  separate();
  out_ += '{';
  first_in_scope_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::end_object() {
  first_in_scope_.pop_back();
  out_ += '}';
  return *this;
}
JsonWriter& JsonWriter::begin_array() {
  separate();
  out_ += '[';
  first_in_scope_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::end_array() {
  first_in_scope_.pop_back();
  out_ += ']';
  return *this;
}
JsonWriter& JsonWriter::key(const std::string& name) {
  separate();
  out_ += '"' + json_escape(name) + "\":";
  after_key_ = true;
  last_key_ = name;
  return *this;
}
void JsonWriter::note_number(double number) {
  if (first_in_scope_.size() == 1 && !last_key_.empty()) top_level_numbers_.emplace_back(last_key_, number);
  last_key_.clear();
}
JsonWriter& JsonWriter::value(const std::string& text) {
  separate();
  out_ += '"' + json_escape(text) + '"';
  return *this;
}
JsonWriter& JsonWriter::value(double number) {
  separate();
  note_number(number);
  if (!std::isfinite(number)) {
    out_ += "null";
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", number);
    out_ += buf;
  }
  return *this;
}
JsonWriter& JsonWriter::value(int64_t number) {
  separate();
  note_number(double(number));
  out_ += std::to_string(number);
  return *this;
}
JsonWriter& JsonWriter::value(bool flag) {
  separate();
  out_ += flag ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::raw(const std::string& json) {
  separate();
  out_ += json;
  return *this;
}

}  // namespace lt
