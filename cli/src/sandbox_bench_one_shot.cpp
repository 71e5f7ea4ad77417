// `warren sandbox bench --one-shot N`: what a script pays for one sandboxed command, the whole
// `warren sandbox exec -- /bin/true` process (loading, flags, the sandbox with the full default
// isolation, seccomp and cgroup limits included, and its teardown), against
// `bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true`, in alternating pairs so that
// both see the same machine. CPU time is the task clock of the command and of every process it
// started, counted by a perf counter that each child inherits: the processes a command leaves to
// be reaped by init (bwrap's sandbox does) count too, which its rusage would miss.
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io.hpp"
#include "sandbox_commands.hpp"

namespace warren::cli {

namespace {

struct Cost {
  double wall_ms = 0, cpu_ms = 0;
};

// A task-clock counter (nanoseconds) on `pid` and, from then on, every process it starts.
int inherited_task_clock(pid_t pid) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.inherit = 1;
  attr.disabled = 0;
  return static_cast<int>(syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC));
}

// One run of `argv` (argv[0] found on PATH) to its exit; nothing unless it exited 0. The child
// waits on a pipe until its counter is attached, so that the count starts before its exec.
std::optional<Cost> cost_of(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int go[2];
  if (pipe2(go, O_CLOEXEC) != 0) return std::nullopt;
  const pid_t pid = fork();
  if (pid == 0) {
    char byte;
    if (read(go[0], &byte, 1) == 1) execvp(args[0], args.data());
    _exit(127);
  }
  close(go[0]);
  const int counter = pid > 0 ? inherited_task_clock(pid) : -1;
  const auto started = std::chrono::steady_clock::now();
  if (counter >= 0) (void)!write(go[1], "g", 1);
  close(go[1]);
  if (pid < 0) return std::nullopt;
  int status = 0;
  const bool ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  // A descendant still running when the command ended adds its count when it exits: wait for
  // the total to settle (it does within a few milliseconds) so that it is counted.
  std::uint64_t ns = 0, before = ~0ULL;
  for (int i = 0; counter >= 0 && ns != before && i < 50; ++i) {
    before = ns;
    if (i) usleep(2000);
    if (read(counter, &ns, sizeof ns) != sizeof ns) ns = 0;
  }
  if (counter >= 0) close(counter);
  if (!ok || counter < 0) return std::nullopt;
  return Cost{wall_ms, static_cast<double>(ns) / 1e6};
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
  std::printf(
      "(medians of %d pairs, alternating; CPU: the task clock of the command and all it started)\n",
      pairs);
  return 0;
}

}  // namespace warren::cli
