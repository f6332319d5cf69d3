#include "src/cli/options.hpp"

#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "src/common/error.hpp"

namespace lt {

ParsedCommand parse_command(const std::string& command, po::options_description& options,
                            const po::positional_options_description& positional, int argc, char** argv) {
  // A command with an option of its own named --config (inspect: a config to compare a checkpoint
  // with) does not take its options from an INI file.
  const bool own_config = options.find_nothrow("config", false) != nullptr;
  options.add_options()("help,h", "show this help and exit");
  if (!own_config)
    options.add_options()(
        "config", po::value<std::string>()->value_name("FILE"),
        "INI file of options ([section] key = value); command-line values override it, and of an option "
        "given twice on the command line the last wins");
  ParsedCommand parsed;
  try {
    // On the command line the last occurrence of an option wins (as in the launcher scripts users know:
    // a wrapper's defaults first, the user's flags after them), so earlier ones are dropped. Then the
    // command line is stored before the file: the first value stored wins, so it overrides the file.
    po::parsed_options given = po::command_line_parser(argc, argv).options(options).positional(positional).run();
    std::set<std::string> seen;
    std::vector<po::option> last_of_each;
    for (auto it = given.options.rbegin(); it != given.options.rend(); ++it)
      if (it->position_key >= 0 || seen.insert(it->string_key).second) last_of_each.push_back(*it);
    given.options.assign(last_of_each.rbegin(), last_of_each.rend());
    po::store(given, parsed.values);
  } catch (const po::error& e) {
    throw InputError(std::string(e.what()) + " (see 'lidartrain " + command + " --help')");
  }
  if (parsed.values.count("help")) {
    parsed.help = true;
    return parsed;
  }
  if (!own_config && parsed.values.count("config")) {
    const std::string path = parsed.values["config"].as<std::string>();
    require(std::filesystem::is_regular_file(path), path + ": config file not found");
    try {
      po::store(po::parse_config_file<char>(path.c_str(), options, /*allow_unregistered=*/false), parsed.values);
    } catch (const po::error& e) {
      throw InputError(path + ": " + e.what());
    }
  }
  try {
    po::notify(parsed.values);
  } catch (const po::error& e) {
    throw InputError(std::string(e.what()) + " (see 'lidartrain " + command + " --help')");
  }
  return parsed;
}

std::string usage_text(const std::string& command, const std::string& synopsis, const std::string& summary,
                       const po::options_description& options) {
  std::ostringstream out;
  out << "Usage: lidartrain " << command << " " << synopsis << "\n\n" << summary << "\n\n" << options;
  return out.str();
}

void require_choice(const po::variables_map& values, const std::string& key,
                    std::initializer_list<const char*> choices) {
  if (!values.count(key)) return;
  const std::string value = values[key].as<std::string>();
  std::string list;
  for (const char* choice : choices) {
    if (value == choice) return;
    list += (list.empty() ? "" : ", ") + std::string(choice);
  }
  throw InputError("--" + key + ": '" + value + "' is not one of " + list);
}

namespace {
double numeric_value(const po::variables_map& values, const std::string& key) {
  const auto& any = values[key].value();
  if (const auto* v = boost::any_cast<int64_t>(&any)) return double(*v);
  if (const auto* v = boost::any_cast<int>(&any)) return double(*v);
  if (const auto* v = boost::any_cast<double>(&any)) return *v;
  if (const auto* v = boost::any_cast<uint64_t>(&any)) return double(*v);
  throw std::logic_error("option " + key + " is not numeric");
}
}  // namespace

void require_positive(const po::variables_map& values, const std::string& key) {
  if (!values.count(key)) return;
  const double value = numeric_value(values, key);
  require(std::isfinite(value) && value > 0,
          "--" + key + ": must be > 0 and finite (got " + std::to_string(value) + ")");
}

void require_non_negative(const po::variables_map& values, const std::string& key) {
  if (!values.count(key)) return;
  const double value = numeric_value(values, key);
  require(std::isfinite(value) && value >= 0,
          "--" + key + ": must be >= 0 and finite (got " + std::to_string(value) + ")");
}

namespace {
// Each comma-separated item of `text` parsed whole by `parse`, kept if `valid`.
template <class T, class Parse, class Valid>
std::vector<T> parse_list(const std::string& text, const std::string& key, const char* what, Parse parse, Valid valid) {
  std::vector<T> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    size_t used = 0;
    T v{};
    try {
      v = parse(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used > 0 && used == item.size() && valid(v), "--" + key + ": '" + text + "' is not a list of " + what);
    values.push_back(v);
  }
  return values;
}
}  // namespace

std::vector<int> parse_positive_ints(const std::string& text, const std::string& key) {
  return parse_list<int>(
      text, key, "positive integers", [](const std::string& s, size_t* used) { return std::stoi(s, used); },
      [](int v) { return v > 0; });
}

std::vector<float> parse_non_negative_floats(const std::string& text, const std::string& key) {
  return parse_list<float>(
      text, key, "non-negative numbers", [](const std::string& s, size_t* used) { return std::stof(s, used); },
      [](float v) { return v >= 0; });
}

std::vector<double> parse_finite_doubles(const std::string& text, const std::string& key) {
  return parse_list<double>(
      text, key, "finite numbers", [](const std::string& s, size_t* used) { return std::stod(s, used); },
      [](double v) { return std::isfinite(v); });
}

}  // namespace lt
