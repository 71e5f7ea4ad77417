// `warren sandbox bench`: start latency and throughput of sandboxed /bin/true, in-process, with
// the full default isolation, side by side with bubblewrap measured in the same run.
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

#include <nlohmann/json.hpp>

#include "io.hpp"
#include "sandbox_commands.hpp"
#include "warren/sandbox/sandbox.hpp"

extern char** environ;

namespace warren::cli {

namespace {

namespace sb = warren::sandbox;
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

// Commands per second with `concurrency` workers sharing `runs` commands.
template <class Fn>
std::optional<double> throughput(Fn one, int runs, int concurrency) {
  std::atomic<int> next{0}, failed{0};
  const auto t = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w)
    workers.emplace_back([&] {
      while (next.fetch_add(1) < runs)
        if (!one()) ++failed;
    });
  for (auto& w : workers) w.join();
  if (failed) return std::nullopt;
  return runs / (elapsed_ms(t) / 1000.0);
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

// Host memory per idle sandbox: `count` sessions (a sandbox with a shell waiting for input)
// held open at once, measured as the drop in MemAvailable.
std::optional<double> idle_density_mib(sb::Runtime& runtime, int count) {
  // Each session holds a handful of descriptors here: raise the soft limit to the hard one.
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  std::vector<std::unique_ptr<sb::Session>> sessions;
  const long before = mem_available_kib();
  for (int i = 0; i < count; ++i) {
    auto s = sb::Session::start(runtime, sb::Policy{});
    if (!s) return std::nullopt;
    sessions.push_back(std::move(*s));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the kernel settle
  const long after = mem_available_kib();
  return static_cast<double>(before - after) / 1024.0 / count;
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
        {"throughput_per_s", *tput}};
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
    if (!json) std::cerr << "holding " << idle << " idle sessions...\n";
    const auto mib = idle_density_mib(runtime, idle);
    if (!mib) {
      std::cerr << "warren sandbox bench: starting an idle session failed\n";
      return 1;
    }
    report["idle"] = {{"sandboxes", idle}, {"host_mib_each", *mib}};
  }
  if (json) {
    write_stdout(report.dump(2) + "\n");
    return 0;
  }
  std::printf("%-8s %10s %10s %10s %14s\n", "", "p50 ms", "p99 ms", "mean ms", "commands/s");
  for (const char* name : {"warren", "bwrap"}) {
    if (!report.contains(name)) continue;
    const auto& r = report[name];
    std::printf("%-8s %10.2f %10.2f %10.2f %14.0f\n", name,
                r["start_latency_ms"]["p50"].get<double>(),
                r["start_latency_ms"]["p99"].get<double>(),
                r["start_latency_ms"]["mean"].get<double>(), r["throughput_per_s"].get<double>());
  }
  std::printf("(%d runs of /bin/true; throughput at concurrency %d)\n", runs, concurrency);
  if (report.contains("idle"))
    std::printf("idle sessions: %d held at once, %.2f MiB of host memory each\n", idle,
                report["idle"]["host_mib_each"].get<double>());
  return 0;
}

}  // namespace warren::cli
