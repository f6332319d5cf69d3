#include "src/common/stop_signal.hpp"

#include <csignal>

namespace lt {
namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signal) {
  g_stop_signal = signal;
}
}  // namespace

void install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int stop_signal() {
  return g_stop_signal;
}

const char* stop_signal_name() {
  return g_stop_signal == SIGUSR1 ? "SIGUSR1" : g_stop_signal == SIGTERM ? "SIGTERM" : g_stop_signal ? "signal" : "";
}

}  // namespace lt
