// `warren sandbox bench --one-shot N`: what a script pays for one sandboxed command, the whole
// `warren sandbox exec -- /bin/true` process (loading, flags, the sandbox with the full default
// isolation, seccomp and cgroup limits included, and its teardown), against
// `bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true`, in alternating pairs so that
// both see the same machine. CPU time is the command's own and that of the processes it reaped.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io.hpp"
#include "sandbox_commands.hpp"

extern char** environ;

namespace warren::cli {

namespace {

struct Cost {
  double wall_ms = 0, cpu_ms = 0;
};

double ms(const timeval& t) {
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3;
}

// One run of `argv` (argv[0] found on PATH) to its exit; nothing unless it exited 0.
std::optional<Cost> cost_of(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const auto started = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return std::nullopt;
  int status = 0;
  rusage usage{};
  if (wait4(pid, &status, 0, &usage) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return std::nullopt;
  return Cost{
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count(),
      ms(usage.ru_utime) + ms(usage.ru_stime)};
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

}  // namespace

int run_one_shot_bench(int pairs, bool json) {
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  const std::vector<std::vector<std::string>> commands = {
      {self, "sandbox", "exec", "--", "/bin/true"},
      {"bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
       "true"}};
  const char* names[] = {"warren", "bwrap"};
  std::vector<double> wall[2], cpu[2];
  if (!json) std::cerr << "timing " << pairs << " pairs...\n";
  for (int pair = 0; pair < pairs; ++pair)
    for (int i = 0; i < 2; ++i) {
      const auto cost = cost_of(commands[i]);
      if (!cost) {
        std::cerr << "warren sandbox bench: " << names[i] << "'s /bin/true failed"
                  << (i ? " (is bwrap installed?)\n" : " (see warren sandbox exec)\n");
        return 1;
      }
      wall[i].push_back(cost->wall_ms);
      cpu[i].push_back(cost->cpu_ms);
    }
  nlohmann::json report = {{"pairs", pairs}};
  for (int i = 0; i < 2; ++i)
    report[names[i]] = {{"wall_ms", median(wall[i])}, {"cpu_ms", median(cpu[i])}};
  if (json) {
    write_stdout(report.dump(2) + "\n");
    return 0;
  }
  std::printf("%-38s %9s %9s\n", "", "wall ms", "CPU ms");
  std::printf("%-38s %9.2f %9.2f\n", "warren sandbox exec -- /bin/true", median(wall[0]),
              median(cpu[0]));
  std::printf("%-38s %9.2f %9.2f\n", "bwrap --unshare-all ... true", median(wall[1]),
              median(cpu[1]));
  std::printf("(medians of %d pairs, alternating; CPU: the command's and its reaped children's)\n",
              pairs);
  return 0;
}

}  // namespace warren::cli
