// `warren sandbox bench`: start latency and throughput of sandboxed /bin/true, in-process, with
// the full default isolation, side by side with bubblewrap measured in the same run.
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <utility>  // before Asio 1.74's awaitable.hpp

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "io.hpp"
#include "sandbox_commands.hpp"
#include "warren/sandbox/sandbox.hpp"

extern char** environ;

namespace warren::cli {

namespace {

namespace sb = warren::sandbox;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Latency {
  double p50_ms = 0, p99_ms = 0, mean_ms = 0;
};

Latency summarize(std::vector<double> ms) {
  Latency l;
  if (ms.empty()) return l;
  std::sort(ms.begin(), ms.end());
  l.p50_ms = ms[ms.size() / 2];
  l.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  for (double m : ms) l.mean_ms += m / static_cast<double>(ms.size());
  return l;
}

double elapsed_ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

// One sandboxed /bin/true; false if it did not run cleanly.
bool warren_true(sb::Runtime& runtime) {
  auto r = runtime.run(sb::Policy{}, sb::Command{{"/bin/true"}, std::nullopt});
  if (!r)
    std::cerr << r.error().message << "\n";
  else if (r->exit_code != 0)
    std::cerr << r->stderr_data << "\n";
  return r && r->exit_code == 0;
}

bool bwrap_true() {
  const char* argv[] = {"bwrap", "--unshare-all", "--ro-bind", "/",    "/",    "--dev",
                        "/dev",  "--proc",        "/proc",     "true", nullptr};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "bwrap", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
    return false;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

template <class Fn>
std::optional<Latency> latency(Fn one, int runs) {
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t = Clock::now();
    if (!one()) return std::nullopt;
    ms.push_back(elapsed_ms(t));
  }
  return summarize(std::move(ms));
}

// CPU time the whole machine has spent so far (user, nice, system, irq, softirq), in ms.
double machine_busy_ms() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
  return static_cast<double>(user + nice + system + irq + softirq) * 1000.0 /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Throughput {
  double per_s = 0;
  // Machine CPU time per command while the workers ran: on a saturated machine the throughput is
  // its inverse, and unlike commands/s it does not move with the speed of the other tenants'
  // hours.
  double cpu_ms_each = 0;
};

// Commands per second with `concurrency` workers sharing `runs` commands.
template <class Fn>
std::optional<Throughput> throughput(Fn one, int runs, int concurrency) {
  std::atomic<int> next{0}, failed{0};
  const double busy_before = machine_busy_ms();
  const auto t = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w)
    workers.emplace_back([&] {
      while (next.fetch_add(1) < runs)
        if (!one()) ++failed;
    });
  for (auto& w : workers) w.join();
  if (failed) return std::nullopt;
  return Throughput{runs / (elapsed_ms(t) / 1000.0), (machine_busy_ms() - busy_before) / runs};
}

long mem_available_kib() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  long value = 0;
  std::string unit;
  while (in >> key >> value >> unit)
    if (key == "MemAvailable:") return value;
  return 0;
}

// Lets this process hold many sandboxes' descriptors: the soft limit rises to the hard one.
void raise_descriptor_limit() {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
}

// Processes on the host whose command line contains `marker`.
std::vector<pid_t> processes_matching(const std::string& marker) {
  std::vector<pid_t> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    const std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find(marker) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

int processes_with(const std::string& marker) {
  return static_cast<int>(processes_matching(marker).size());
}

// Memory the kernel frees late (namespaces, cgroups, RCU callbacks) would count against the next
// measurement: wait until MemAvailable holds still (within 1 MiB over half a second, 20 s at most).
long settled_mem_available_kib() {
  long last = mem_available_kib();
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const long now = mem_available_kib();
    if (std::labs(now - last) < 1024) return now;
    last = now;
  }
  return last;
}

// The drop in MemAvailable per sandbox once `count` processes carrying `marker` are running.
std::optional<double> held_mib(long before, const std::string& marker, int count) {
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (processes_with(marker) < count) {
    if (Clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return static_cast<double>(before - settled_mem_available_kib()) / 1024.0 / count;
}

asio::awaitable<void> hold_sleep(sb::Runtime& runtime, std::string marker) {
  sb::Command command;
  command.argv = {"sleep", marker};
  sb::Policy policy;
  policy.limits.timeout = std::chrono::milliseconds(0);
  (void)co_await runtime.async_run(std::move(policy), std::move(command));
}

// `count` idle sandboxes, each running `sleep`, supervised by coroutines on one thread. A
// Runtime of their own: each holds its own cgroup and network namespace, not pooled ones.
std::optional<double> idle_sandboxes_mib(int count) {
  sb::Runtime runtime;
  const std::string marker = "600." + std::to_string(getpid()) + "1";
  const long before = settled_mem_available_kib();
  std::optional<double> mib;
  {
    asio::io_context io;
    for (int i = 0; i < count; ++i) asio::co_spawn(io, hold_sleep(runtime, marker), asio::detached);
    std::thread supervisor([&] { io.run(); });
    mib = held_mib(before, marker, count);
    io.stop();
    supervisor.join();
  }  // the io_context goes, and with it every supervising coroutine and its sandbox
  return mib;
}

// `count` sessions (a sandbox with a bash waiting for input) held at once.
std::optional<double> idle_sessions_mib(int count) {
  sb::Runtime runtime;
  std::vector<std::unique_ptr<sb::Session>> sessions;
  const long before = settled_mem_available_kib();
  for (int i = 0; i < count; ++i) {
    auto s = sb::Session::start(runtime, sb::Policy{});
    if (!s) return std::nullopt;
    sessions.push_back(std::move(*s));
  }
  return static_cast<double>(before - settled_mem_available_kib()) / 1024.0 / count;
}

// `count` bwrap sandboxes, each running `sleep`.
std::optional<double> idle_bwrap_mib(int count) {
  const std::string marker = "600." + std::to_string(getpid()) + "2";
  const long before = settled_mem_available_kib();
  std::vector<pid_t> pids;
  for (int i = 0; i < count; ++i) {
    const char* argv[] = {"bwrap",
                          "--unshare-all",
                          "--die-with-parent",
                          "--ro-bind",
                          "/",
                          "/",
                          "--dev",
                          "/dev",
                          "--proc",
                          "/proc",
                          "sleep",
                          marker.c_str(),
                          nullptr};
    pid_t pid = 0;
    if (posix_spawnp(&pid, "bwrap", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
      break;
    pids.push_back(pid);
  }
  const auto mib = pids.size() == static_cast<std::size_t>(count) ? held_mib(before, marker, count)
                                                                  : std::nullopt;
  for (pid_t pid : pids) kill(pid, SIGKILL);
  for (pid_t pid : pids) waitpid(pid, nullptr, 0);
  // bwrap's inner processes do not always follow the outer one (seen as root): end them too.
  for (int round = 0; round < 100 && processes_with(marker) > 0; ++round) {
    for (pid_t pid : processes_matching(marker)) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return mib;
}

}  // namespace

int run_sandbox_bench(int runs, int concurrency, int idle, bool compare_bwrap, bool json) {
  nlohmann::json report = {{"runs", runs}, {"concurrency", concurrency}};
  auto measure = [&](const char* name, auto one) -> bool {
    if (!json) std::cerr << "measuring " << name << "...\n";
    const auto lat = latency(one, runs);
    const auto tput = throughput(one, runs, concurrency);
    if (!lat || !tput) return false;
    report[name] = {
        {"start_latency_ms", {{"p50", lat->p50_ms}, {"p99", lat->p99_ms}, {"mean", lat->mean_ms}}},
        {"throughput_per_s", tput->per_s},
        {"cpu_ms_per_command", tput->cpu_ms_each}};
    return true;
  };
  // One runtime for every warren sandbox of the run, as a long-lived Warren process has.
  sb::Runtime runtime;
  if (!measure("warren", [&] { return warren_true(runtime); })) {
    std::cerr << "warren sandbox bench: a sandboxed /bin/true failed (see warren sandbox exec)\n";
    return 1;
  }
  if (compare_bwrap && !measure("bwrap", bwrap_true)) {
    std::cerr << "warren sandbox bench: bwrap failed or is not installed\n";
    return 1;
  }
  // Density last: thousands of namespaces being torn down would slow the timings above.
  if (idle > 0) {
    raise_descriptor_limit();
    if (!json) std::cerr << "holding " << idle << " idle sandboxes, then sessions...\n";
    // A first round only warms up: the kernel's caches grow to hold this many sandboxes once, and
    // whichever measurement came first would pay for that.
    (void)idle_sandboxes_mib(idle);
    const auto sandboxes = idle_sandboxes_mib(idle);
    const auto sessions = idle_sessions_mib(idle);
    if (!sandboxes || !sessions) {
      std::cerr << "warren sandbox bench: holding idle sandboxes failed\n";
      return 1;
    }
    report["idle"] = {{"sandboxes", idle},
                      {"warren_sleep_mib_each", *sandboxes},
                      {"warren_session_mib_each", *sessions}};
    if (compare_bwrap) {
      if (!json) std::cerr << "holding " << idle << " idle bwrap sandboxes...\n";
      const auto bwrap = idle_bwrap_mib(idle);
      if (!bwrap) {
        std::cerr << "warren sandbox bench: holding idle bwrap sandboxes failed\n";
        return 1;
      }
      report["idle"]["bwrap_sleep_mib_each"] = *bwrap;
    }
  }
  if (json) {
    write_stdout(report.dump(2) + "\n");
    return 0;
  }
  std::printf("%-8s %10s %10s %10s %14s %12s\n", "", "p50 ms", "p99 ms", "mean ms", "commands/s",
              "CPU ms each");
  for (const char* name : {"warren", "bwrap"}) {
    if (!report.contains(name)) continue;
    const auto& r = report[name];
    std::printf("%-8s %10.2f %10.2f %10.2f %14.0f %12.2f\n", name,
                r["start_latency_ms"]["p50"].get<double>(),
                r["start_latency_ms"]["p99"].get<double>(),
                r["start_latency_ms"]["mean"].get<double>(), r["throughput_per_s"].get<double>(),
                r["cpu_ms_per_command"].get<double>());
  }
  std::printf(
      "(%d runs of /bin/true; throughput and the machine's CPU time per command at concurrency "
      "%d)\n",
      runs, concurrency);
  if (report.contains("idle")) {
    const auto& held = report["idle"];
    std::printf("idle, %d held at once, host MiB each: warren sandbox %.2f, warren session %.2f",
                idle, held["warren_sleep_mib_each"].get<double>(),
                held["warren_session_mib_each"].get<double>());
    if (held.contains("bwrap_sleep_mib_each"))
      std::printf(", bwrap sandbox %.2f", held["bwrap_sleep_mib_each"].get<double>());
    std::printf("\n(an idle sandbox runs sleep; a session holds a bash waiting for input)\n");
  }
  return 0;
}

}  // namespace warren::cli
