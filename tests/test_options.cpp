#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "src/cli/options.hpp"
#include "src/common/error.hpp"
#include "src/train/config.hpp"

namespace lt {
namespace {

std::string temp_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

struct Argv {
  explicit Argv(std::vector<std::string> args) : strings(std::move(args)) {
    for (auto& s : strings) pointers.push_back(s.data());
  }
  int argc() const { return int(pointers.size()); }
  char** argv() { return pointers.data(); }
  std::vector<std::string> strings;
  std::vector<char*> pointers;
};

po::options_description train_like_options() {
  po::options_description options;
  options.add_options()("train.steps", po::value<int64_t>())("train.lr", po::value<double>())(
      "train.optimizer", po::value<std::string>()->default_value("adamw"))("model.name", po::value<std::string>());
  return options;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Options, IniSectionsMapToDottedKeysAndCommandLineOverrides) {
  const std::string config = temp_file("lt_opts_ok.ini", "[train]\nsteps = 10\nlr = 0.5\n[model]\nname = semseg\n");
  auto options = train_like_options();
  Argv args({"train", "--config", config, "--train.steps=25"});
  const ParsedCommand parsed = parse_command("train", options, {}, args.argc(), args.argv());
  EXPECT_EQ(parsed.values["train.steps"].as<int64_t>(), 25);  // command line wins
  EXPECT_DOUBLE_EQ(parsed.values["train.lr"].as<double>(), 0.5);
  EXPECT_EQ(parsed.values["model.name"].as<std::string>(), "semseg");
  EXPECT_EQ(parsed.values["train.optimizer"].as<std::string>(), "adamw");
}

TEST(Options, UnknownKeyInConfigNamesTheKeyAndTheFile) {
  const std::string config = temp_file("lt_opts_unknown.ini", "[train]\nsteps = 10\nwarmup_stepz = 3\n");
  auto options = train_like_options();
  Argv args({"train", "--config", config});
  const std::string message = error_of([&] { parse_command("train", options, {}, args.argc(), args.argv()); });
  EXPECT_NE(message.find("train.warmup_stepz"), std::string::npos) << message;
  EXPECT_NE(message.find(config), std::string::npos) << message;
}

TEST(Options, MalformedValueNamesTheKey) {
  const std::string config = temp_file("lt_opts_bad.ini", "[train]\nsteps = ten\n");
  auto options = train_like_options();
  Argv args({"train", "--config", config});
  const std::string message = error_of([&] { parse_command("train", options, {}, args.argc(), args.argv()); });
  EXPECT_NE(message.find("train.steps"), std::string::npos) << message;
}

TEST(Options, UnknownCommandLineOptionIsAnError) {
  auto options = train_like_options();
  Argv args({"train", "--train.stepz=3"});
  const std::string message = error_of([&] { parse_command("train", options, {}, args.argc(), args.argv()); });
  EXPECT_NE(message.find("train.stepz"), std::string::npos) << message;
}

TEST(Options, MissingConfigFileIsNamed) {
  auto options = train_like_options();
  Argv args({"train", "--config", "/nonexistent/x.ini"});
  const std::string message = error_of([&] { parse_command("train", options, {}, args.argc(), args.argv()); });
  EXPECT_NE(message.find("/nonexistent/x.ini"), std::string::npos) << message;
}

TEST(Options, ChoicesAndRangesAreChecked) {
  auto options = train_like_options();
  Argv args({"train", "--train.optimizer=adam", "--train.steps=0"});
  const ParsedCommand parsed = parse_command("train", options, {}, args.argc(), args.argv());
  EXPECT_EQ(error_of([&] {
              require_choice(parsed.values, "train.optimizer", {"adamw", "sgd"});
            }),
            "--train.optimizer: 'adam' is not one of adamw, sgd");
  EXPECT_NE(error_of([&] { require_positive(parsed.values, "train.steps"); }).find("--train.steps"), std::string::npos);
}

// Runs f in a child process and returns what it returned, or "(did not finish)" after `seconds`: a
// regression to a hang fails the test instead of hanging the suite.
std::string result_within(double seconds, const std::function<std::string()>& f) {
  const auto path = std::filesystem::temp_directory_path() / ("lt_opts_child_" + std::to_string(::getpid()));
  const pid_t child = ::fork();
  if (child == 0) {
    std::ofstream(path) << f();
    ::_exit(0);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(child, &status, WNOHANG) == child) {
      std::ifstream in(path);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::filesystem::remove(path);
      return text;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, &status, 0);
  return "(did not finish)";
}

// Fuzz finding (tests/fuzz/findings/ini_config-hang.ini): Boost 1.74's what() replaces placeholders
// until none is left, so a key or value holding "%canonical_option%" or "%value%" never ended.
TEST(Options, FuzzFindingPlaceholdersInKeysAndValuesEndWithTheirMessage) {
  const std::string unknown = result_within(20, [] {
    const std::string config = temp_file("lt_opts_placeholder.ini", "[train]\nst%canonical_option%eps = 3\n");
    auto options = train_like_options();
    Argv args({"train", "--config", config});
    return error_of([&] { parse_command("train", options, {}, args.argc(), args.argv()); });
  });
  EXPECT_NE(unknown.find("option 'train.st%canonical_option%eps'"), std::string::npos) << unknown;
  const std::string bad_value = result_within(20, [] {
    const std::string config = temp_file("lt_opts_placeholder2.ini", "[train]\nsteps = %value%x\n");
    auto options = train_like_options();
    Argv args({"train", "--config", config});
    return error_of([&] { parse_command("train", options, {}, args.argc(), args.argv()); });
  });
  EXPECT_NE(bad_value.find("the argument ('%value%x') for option 'train.steps' is invalid"), std::string::npos)
      << bad_value;
  const std::string command_line = result_within(20, [] {
    auto options = train_like_options();
    Argv args({"train", "--train.lr=%value%%canonical_option%"});
    return error_of([&] { parse_command("train", options, {}, args.argc(), args.argv()); });
  });
  EXPECT_NE(command_line.find("('%value%%canonical_option%') for option '--train.lr' is invalid"), std::string::npos)
      << command_line;
  const std::string stored = result_within(20, [] {
    std::ifstream in(std::string(LIDARTRAIN_FUZZ_FINDINGS) + "/ini_config-hang.ini", std::ios::binary);
    const std::string finding((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return error_of([&] { (void)parse_config_text(finding, "finding.ini"); });
  });
  EXPECT_EQ(stored.rfind("finding.ini: stored config: ", 0), 0u) << stored;
}

// For every other error the text is what Boost's what() says.
TEST(Options, ErrorTextIsBoostsForOrdinaryErrors) {
  po::options_description options;
  options.add_options()("train.steps", po::value<int64_t>())("train.step_time", po::value<double>())(
      "train.lr", po::value<double>()->required())("verbose,v", po::bool_switch());
  for (const std::vector<std::string>& argv :
       std::vector<std::vector<std::string>>{{"x", "--train.stepz=3"},
                                             {"x", "--train.steps=ten"},
                                             {"x", "--train.step=3"},
                                             {"x", "--train.steps"},
                                             {"x", "-v=3"},
                                             {"x", "--train.steps=1", "--train.steps=2"},
                                             {"x"}}) {
    Argv args(argv);
    bool thrown = false;
    try {
      po::variables_map values;
      po::store(po::parse_command_line(args.argc(), args.argv(), options), values);
      po::notify(values);
    } catch (const po::error& e) {
      thrown = true;
      EXPECT_EQ(option_error_text(e), std::string(e.what())) << argv.back();
    }
    EXPECT_TRUE(thrown) << argv.back();
  }
}

}  // namespace
}  // namespace lt
