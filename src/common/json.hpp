#pragma once
// A small JSON writer for the reports that commands emit with --json (and, later, metrics.jsonl).
// It writes; nothing in lidartrain parses JSON.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lt {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(const std::string& name);
  JsonWriter& value(const std::string& text);
  JsonWriter& value(const char* text) { return value(std::string(text)); }
  JsonWriter& value(double number);
  JsonWriter& value(int64_t number);
  JsonWriter& value(int number) { return value(int64_t(number)); }
  JsonWriter& value(bool flag);
  // A value that is JSON already (one this program wrote), inserted as it is.
  JsonWriter& raw(const std::string& json);
  const std::string& str() const { return out_; }
  // The numbers written as values of the outermost object's keys, in order (key, value): what a caller
  // that wrote a report passes on elsewhere (train's validation metrics to TensorBoard) without parsing it.
  const std::vector<std::pair<std::string, double>>& top_level_numbers() const { return top_level_numbers_; }

 private:
  void separate();
  void note_number(double number);
  std::string out_;
  std::string last_key_;
  std::vector<std::pair<std::string, double>> top_level_numbers_;
  std::vector<bool> first_in_scope_;
  bool after_key_ = false;
};

std::string json_escape(const std::string& text);

}  // namespace lt
