#include "src/cli/options.hpp"

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "src/common/error.hpp"

namespace lt {

namespace {
// Boost keeps an error's substitutions and option prefix protected. A pointer to member formed in a class
// derived from error_with_option_name reads them from any such error (protected access through the
// derived class, [class.protected]); nothing of the error is changed.
struct OptionErrorAccess : po::error_with_option_name {
  static const std::map<std::string, std::string>& substitutions(const po::error_with_option_name& e) {
    return e.*(&OptionErrorAccess::m_substitutions);
  }
  static const std::map<std::string, string_pair>& defaults(const po::error_with_option_name& e) {
    return e.*(&OptionErrorAccess::m_substitution_defaults);
  }
  static std::string prefix(const po::error_with_option_name& e) {
    return (e.*(&OptionErrorAccess::get_canonical_option_prefix))();
  }
};

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}
}  // namespace

std::string option_error_text(const po::error& e) {
  const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
  if (named == nullptr) return e.what();  // a fixed text, no placeholders
  std::map<std::string, std::string> values = OptionErrorAccess::substitutions(*named);
  values["canonical_option"] = named->get_option_name();
  values["prefix"] = OptionErrorAccess::prefix(*named);
  std::string text = named->m_error_template;
  // Boost's own defaults for what is missing ("option '%canonical_option%'" -> "option"): its constants,
  // replaced before any value from the input enters the text.
  for (const auto& [name, from_to] : OptionErrorAccess::defaults(*named))
    if (values[name].empty()) replace_all(text, from_to.first, from_to.second);
  std::string message;
  for (size_t i = 0; i < text.size();) {
    const size_t end = text[i] == '%' ? text.find('%', i + 1) : std::string::npos;
    if (end != std::string::npos) {
      const auto value = values.find(text.substr(i + 1, end - i - 1));
      if (value != values.end()) {
        message += value->second;  // once: a value's own '%...%' stays as it is
        i = end + 1;
        continue;
      }
    }
    message += text[i++];
  }
  if (const auto* ambiguous = dynamic_cast<const po::ambiguous_option*>(&e)) {
    // Boost's wording: " and matches '--a', '--b', and '--c'" (each alternative once, sorted).
    const std::set<std::string> set(ambiguous->alternatives().begin(), ambiguous->alternatives().end());
    const std::vector<std::string> alternatives(set.begin(), set.end());
    if (!alternatives.empty()) {
      message += " and matches ";
      for (size_t i = 0; i + 1 < alternatives.size(); ++i) message += "'" + values["prefix"] + alternatives[i] + "', ";
      if (alternatives.size() > 1) message += "and ";
      message += "'" + values["prefix"] + alternatives.back() + "'";
    }
  }
  return message;
}

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
    throw InputError(option_error_text(e) + " (see 'lidartrain " + command + " --help')");
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
      throw InputError(path + ": " + option_error_text(e));
    }
  }
  try {
    po::notify(parsed.values);
  } catch (const po::error& e) {
    throw InputError(option_error_text(e) + " (see 'lidartrain " + command + " --help')");
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
  require_choice(values, key, std::vector<std::string>(choices.begin(), choices.end()));
}

void require_choice(const po::variables_map& values, const std::string& key, const std::vector<std::string>& choices) {
  if (!values.count(key)) return;
  const std::string value = values[key].as<std::string>();
  std::string list;
  for (const std::string& choice : choices) {
    if (value == choice) return;
    list += (list.empty() ? "" : ", ") + choice;
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
