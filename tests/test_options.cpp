#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "src/cli/options.hpp"
#include "src/common/error.hpp"

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

}  // namespace
}  // namespace lt
