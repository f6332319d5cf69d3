#pragma once
// Command-line and config-file options for the subcommands (DESIGN.md §3).
//
// Every subcommand declares its options once (a boost::program_options description). `--config FILE`
// reads an INI file in Boost.Program_options syntax whose sections map to dotted options
// (`[train] steps = 10` is `--train.steps=10`); values given on the command line override the file.
// Unknown keys and malformed values are InputErrors naming the key (and the file).
#include <boost/program_options.hpp>
#include <initializer_list>
#include <string>
#include <vector>

namespace lt {

namespace po = boost::program_options;

// The text of a Boost.Program_options error, made here rather than by e.what(): Boost 1.74 replaces each
// %placeholder% in its message until none is left, so an option name or value that itself holds one (a
// fuzzed config's key "x%canonical_option%") never ends. Here every placeholder is replaced once, left to
// right, so the message is what() would have said, for any input.
std::string option_error_text(const po::error& e);

struct ParsedCommand {
  po::variables_map values;
  bool help = false;  // --help was given: the caller prints usage and exits 0
};

// Parses argv (argv[0] is the subcommand's name). Adds --help and --config to `options`.
ParsedCommand parse_command(const std::string& command, po::options_description& options,
                            const po::positional_options_description& positional, int argc, char** argv);

// "Usage: lidartrain <command> <synopsis>" and the options, for --help.
std::string usage_text(const std::string& command, const std::string& synopsis, const std::string& summary,
                       const po::options_description& options);

// InputError "--<key>: '<value>' is not one of a, b, c" unless the option's value is one of `choices`.
void require_choice(const po::variables_map& values, const std::string& key,
                    std::initializer_list<const char*> choices);
void require_choice(const po::variables_map& values, const std::string& key, const std::vector<std::string>& choices);
// InputError "--<key>: must be > 0 (got ...)" etc.
void require_positive(const po::variables_map& values, const std::string& key);
void require_non_negative(const po::variables_map& values, const std::string& key);
// Comma-separated values of option `key` ("32,64,128"); InputError naming the key for anything else.
std::vector<int> parse_positive_ints(const std::string& text, const std::string& key);
std::vector<float> parse_non_negative_floats(const std::string& text, const std::string& key);
std::vector<double> parse_finite_doubles(const std::string& text, const std::string& key);

}  // namespace lt
