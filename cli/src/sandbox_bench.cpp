// `warren sandbox bench`: start latency and throughput of sandboxed /bin/true, in-process, with
// the full default isolation, side by side with bubblewrap measured in the same run.
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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

// Runs argv[0] (found on PATH) to its exit; false unless it exited 0.
bool spawn_and_wait(const char* const* argv) {
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
    return false;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool bwrap_true() {
  const char* argv[] = {"bwrap", "--unshare-all", "--ro-bind", "/",    "/",    "--dev",
                        "/dev",  "--proc",        "/proc",     "true", nullptr};
  return spawn_and_wait(argv);
}

// The floor: what the machine takes to start and reap /bin/true with no sandbox at all.
bool bare_true() {
  const char* argv[] = {"/bin/true", nullptr};
  return spawn_and_wait(argv);
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

// The machine's CPU time so far, from the first line of /proc/stat, in clock ticks.
struct CpuTicks {
  std::uint64_t busy = 0;   // user, nice, system, irq, softirq
  std::uint64_t idle = 0;   // idle and iowait
  std::uint64_t steal = 0;  // given by the hypervisor to other guests
};

CpuTicks cpu_ticks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return {user + nice + system + irq + softirq, idle + iowait, steal};
}

struct Throughput {
  double per_s = 0;
  // Machine CPU time per command while the workers ran: on a saturated machine the throughput is
  // its inverse, and unlike commands/s it does not move with the speed of the other tenants'
  // hours.
  double cpu_ms_each = 0;
  // Shares of the machine's time while the workers ran: CPUs that had nothing to run, and CPUs
  // the hypervisor gave to other guests. Steal slows every figure here and shows nowhere else.
  double idle_percent = 0, steal_percent = 0;
};

// Commands per second with `concurrency` workers sharing `runs` commands.
template <class Fn>
std::optional<Throughput> throughput(Fn one, int runs, int concurrency) {
  std::atomic<int> next{0}, failed{0};
  const CpuTicks before = cpu_ticks();
  const auto t = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w)
    workers.emplace_back([&] {
      while (next.fetch_add(1) < runs)
        if (!one()) ++failed;
    });
  for (auto& w : workers) w.join();
  if (failed) return std::nullopt;
  const double seconds = elapsed_ms(t) / 1000.0;
  const CpuTicks after = cpu_ticks();
  const auto busy = static_cast<double>(after.busy - before.busy);
  const auto idle = static_cast<double>(after.idle - before.idle);
  const auto steal = static_cast<double>(after.steal - before.steal);
  const double all = std::max(1.0, busy + idle + steal);
  return Throughput{runs / seconds,
                    busy * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK)) / runs,
                    100.0 * idle / all, 100.0 * steal / all};
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

int processes_with(const std::string& marker) {
  return static_cast<int>(sb::processes_on_host(marker).size());
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
    for (pid_t pid : sb::processes_on_host(marker)) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return mib;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// One round's figures of one sandbox tool.
nlohmann::json round_figures(const Latency& lat, const Throughput& tput) {
  return {{"p50_ms", lat.p50_ms},
          {"p99_ms", lat.p99_ms},
          {"mean_ms", lat.mean_ms},
          {"throughput_per_s", tput.per_s},
          {"cpu_ms_per_command", tput.cpu_ms_each},
          {"idle_percent", tput.idle_percent},
          {"steal_percent", tput.steal_percent}};
}

// The median of every figure across rounds, in the report's shape, with the rounds themselves.
nlohmann::json summarize_rounds(const nlohmann::json& rounds) {
  auto mid = [&](const char* key) {
    std::vector<double> values;
    for (const auto& r : rounds) values.push_back(r[key].get<double>());
    return median(std::move(values));
  };
  return {{"start_latency_ms",
           {{"p50", mid("p50_ms")}, {"p99", mid("p99_ms")}, {"mean", mid("mean_ms")}}},
          {"throughput_per_s", mid("throughput_per_s")},
          {"cpu_ms_per_command", mid("cpu_ms_per_command")},
          {"idle_percent", mid("idle_percent")},
          {"steal_percent", mid("steal_percent")},
          {"rounds", rounds}};
}

// warren against another way to run /bin/true, round by round (each pair measured minutes apart
// at most, so a change in the machine's speed moves both): the median of the rounds' ratios.
nlohmann::json compare_rounds(const nlohmann::json& warren, const nlohmann::json& other) {
  std::vector<double> throughput, p50;
  for (std::size_t i = 0; i < warren.size() && i < other.size(); ++i) {
    throughput.push_back(warren[i]["throughput_per_s"].get<double>() /
                         std::max(1e-9, other[i]["throughput_per_s"].get<double>()));
    p50.push_back(other[i]["p50_ms"].get<double>() /
                  std::max(1e-9, warren[i]["p50_ms"].get<double>()));
  }
  return {{"throughput_times", median(throughput)}, {"p50_times_faster", median(p50)}};
}

}  // namespace

int run_sandbox_bench(const BenchOptions& options) {
  const int runs = options.runs, concurrency = options.concurrency, idle = options.idle;
  const bool compare_bwrap = options.compare_bwrap, compare_floor = options.compare_floor,
             json = options.json;
  nlohmann::json report = {
      {"runs", runs}, {"concurrency", concurrency}, {"rounds", options.rounds}};
  nlohmann::json rounds = {{"warren", nlohmann::json::array()},
                           {"fresh", nlohmann::json::array()},
                           {"bwrap", nlohmann::json::array()},
                           {"floor", nlohmann::json::array()}};
  auto measure = [&](const char* name, int round, auto one) -> bool {
    if (!json) std::cerr << "measuring " << name << " (round " << round << ")...\n";
    const auto lat = latency(one, runs);
    const auto tput = throughput(one, runs, concurrency);
    if (!lat || !tput) return false;
    rounds[name].push_back(round_figures(*lat, *tput));
    return true;
  };
  // One runtime for every warren sandbox of the run, as a long-lived Warren process has: it
  // recycles sandboxes (each /bin/true runs in a sandbox that is as new). `fresh` makes a new
  // sandbox for every command.
  sb::Runtime runtime;
  sb::Runtime fresh_runtime{sb::Runtime::Options{.recycle = 0}};
  for (int round = 1; round <= options.rounds; ++round) {
    if (!measure("warren", round, [&] { return warren_true(runtime); }) ||
        !measure("fresh", round, [&] { return warren_true(fresh_runtime); })) {
      std::cerr << "warren sandbox bench: a sandboxed /bin/true failed (see warren sandbox exec)\n";
      return 1;
    }
    if (compare_bwrap && !measure("bwrap", round, bwrap_true)) {
      std::cerr << "warren sandbox bench: bwrap failed or is not installed\n";
      return 1;
    }
    if (compare_floor && !measure("floor", round, bare_true)) {
      std::cerr << "warren sandbox bench: /bin/true failed without a sandbox\n";
      return 1;
    }
  }
  report["warren"] = summarize_rounds(rounds["warren"]);
  report["fresh"] = summarize_rounds(rounds["fresh"]);
  if (compare_bwrap) {
    report["bwrap"] = summarize_rounds(rounds["bwrap"]);
    report["warren_vs_bwrap"] = compare_rounds(rounds["warren"], rounds["bwrap"]);
    report["fresh_vs_bwrap"] = compare_rounds(rounds["fresh"], rounds["bwrap"]);
  }
  if (compare_floor) {
    report["floor"] = summarize_rounds(rounds["floor"]);
    report["warren_vs_floor"] = compare_rounds(rounds["warren"], rounds["floor"]);
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
  std::printf("%-8s %9s %9s %9s %12s %12s %7s %7s\n", "", "p50 ms", "p99 ms", "mean ms",
              "commands/s", "CPU ms each", "idle %", "steal %");
  for (const char* name : {"warren", "fresh", "bwrap", "floor"}) {
    if (!report.contains(name)) continue;
    const auto& r = report[name];
    std::printf("%-8s %9.2f %9.2f %9.2f %12.0f %12.2f %7.1f %7.1f\n", name,
                r["start_latency_ms"]["p50"].get<double>(),
                r["start_latency_ms"]["p99"].get<double>(),
                r["start_latency_ms"]["mean"].get<double>(), r["throughput_per_s"].get<double>(),
                r["cpu_ms_per_command"].get<double>(), r["idle_percent"].get<double>(),
                r["steal_percent"].get<double>());
  }
  std::printf(
      "(%d runs of /bin/true; throughput, and the machine's CPU time per command and idle and "
      "stolen shares, at concurrency %d",
      runs, concurrency);
  if (options.rounds > 1)
    std::printf("; medians of %d rounds%s", options.rounds,
                compare_bwrap || compare_floor ? ", the tools alternating" : "");
  std::printf(")\n");
  std::printf(
      "(warren: recycled sandboxes, each as new; fresh: a new sandbox for every command)\n");
  if (compare_floor) std::printf("(floor: /bin/true started with posix_spawn, no sandbox)\n");
  if (report.contains("warren_vs_bwrap"))
    std::printf(
        "warren against bwrap, the median of the rounds' ratios: %.2fx the commands/s, "
        "p50 %.2fx as fast\n",
        report["warren_vs_bwrap"]["throughput_times"].get<double>(),
        report["warren_vs_bwrap"]["p50_times_faster"].get<double>());
  if (report.contains("fresh_vs_bwrap"))
    std::printf("fresh against bwrap: %.2fx the commands/s, p50 %.2fx as fast\n",
                report["fresh_vs_bwrap"]["throughput_times"].get<double>(),
                report["fresh_vs_bwrap"]["p50_times_faster"].get<double>());
  if (report.contains("warren_vs_floor"))
    std::printf("warren against the floor: %.2fx the commands/s, p50 %.2fx the floor's\n",
                report["warren_vs_floor"]["throughput_times"].get<double>(),
                1.0 / std::max(1e-9, report["warren_vs_floor"]["p50_times_faster"].get<double>()));
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
