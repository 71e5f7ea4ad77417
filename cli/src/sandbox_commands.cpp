#include "sandbox_commands.hpp"

#include <unistd.h>
#include <csignal>

#include <filesystem>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "io.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::cli {

namespace {

namespace sb = warren::sandbox;

// Flags that describe a sandbox, shared by exec and shell.
struct PolicyFlags {
  std::string memory = "1G", disk = "1G", output_limit = "1M";
  std::uint32_t pids = 512;
  double cpus = 1.0, timeout = 60, idle_timeout = 0;
  std::string net = "none", privileges = "none";
  std::string rootfs, workspace, workspace_path = "/workspace", policy, snapshot;
  std::vector<std::string> mounts, env;
};

struct ExecFlags {
  PolicyFlags sandbox;
  std::vector<std::string> command;
  bool json = false, pass_stdin = false;
};

void add_policy_flags(CLI::App* app, PolicyFlags& f) {
  app->add_option("--memory", f.memory, "memory limit (e.g. 512M); swap is 0");
  app->add_option("--pids", f.pids, "maximum number of processes");
  app->add_option("--cpus", f.cpus, "CPU quota in cores (0: none)")->check(CLI::NonNegativeNumber);
  app->add_option("--timeout", f.timeout, "wall-clock limit in seconds (0: none)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--idle-timeout", f.idle_timeout, "kill after this many seconds without output")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--disk", f.disk,
                  "size of the writable layer, and what commands may add to --workspace (e.g. 1G)");
  app->add_option("--net", f.net,
                  "none (default: a private loopback only), outbound (a private network whose "
                  "traffic leaves through a NAT; the host's loopback unreachable; root) or host")
      ->check(CLI::IsMember({"none", "outbound", "host"}));
  app->add_option("--privileges", f.privileges,
                  "none (default: the command holds no capability) or container (Docker's "
                  "default set, inside the sandbox's own user namespace)")
      ->check(CLI::IsMember({"none", "container"}));
  app->add_option("--rootfs", f.rootfs, "an image directory to use as the root");
  app->add_option("--snapshot", f.snapshot,
                  "start from a snapshot (see shell --save-snapshot): its writable layer and "
                  "workspace, copy-on-write");
  app->add_option("--workspace", f.workspace,
                  "host folder seen at /workspace (the working dir); as root, what the commands "
                  "change there is written into it when the sandbox ends, at most --disk");
  app->add_option("--workspace-path", f.workspace_path,
                  "where the workspace appears inside (default /workspace; a task's WORKDIR)");
  // One value per flag (repeat it for more): a list-taking flag would also take the `--` that
  // starts the command, and the command's own flags with it.
  app->add_option("--mount", f.mounts, "SRC:DST[:ro|rw] (default rw); repeat for more")
      ->allow_extra_args(false);
  app->add_option("--env", f.env, "K=V added to the environment; repeat for more")
      ->allow_extra_args(false);
  app->add_option("--output-limit", f.output_limit, "per-stream output kept (head and tail)");
  app->add_option("--policy", f.policy,
                  "seccomp policy JSON (default: configs/seccomp/default.json)");
}

// The policy, or a one-line message naming the bad flag.
std::optional<sb::Policy> to_policy(const PolicyFlags& f, std::string& problem) {
  sb::Policy policy;
  const auto memory = parse_size(f.memory), disk = parse_size(f.disk),
             output = parse_size(f.output_limit);
  if (!memory) problem = "--memory: not a size: " + f.memory;
  if (!disk) problem = "--disk: not a size: " + f.disk;
  if (!output) problem = "--output-limit: not a size: " + f.output_limit;
  if (!problem.empty()) return std::nullopt;
  policy.limits.memory_bytes = *memory;
  policy.limits.disk_bytes = *disk;
  policy.limits.output_bytes = *output;
  policy.limits.pids = f.pids;
  policy.limits.cpus = f.cpus;
  policy.limits.timeout = std::chrono::milliseconds(static_cast<long long>(f.timeout * 1000));
  policy.limits.idle_timeout =
      std::chrono::milliseconds(static_cast<long long>(f.idle_timeout * 1000));
  policy.network = f.net == "host"       ? sb::Network::Host
                   : f.net == "outbound" ? sb::Network::Outbound
                                         : sb::Network::None;
  policy.privileges =
      f.privileges == "container" ? sb::Privileges::Container : sb::Privileges::None;
  policy.rootfs = f.rootfs;
  policy.workspace = f.workspace;
  policy.workspace_path = f.workspace_path;
  policy.snapshot = f.snapshot;
  policy.seccomp_policy = f.policy;
  policy.env = f.env;
  for (const std::string& m : f.mounts) {
    // SRC:DST[:ro|rw]
    const std::size_t a = m.find(':');
    if (a == std::string::npos) {
      problem = "--mount wants SRC:DST[:ro], got " + m;
      return std::nullopt;
    }
    const std::size_t b = m.find(':', a + 1);
    sb::Mount mount{m.substr(0, a), m.substr(a + 1, b == std::string::npos ? b : b - a - 1), false};
    if (b != std::string::npos) {
      const std::string mode = m.substr(b + 1);
      if (mode != "ro" && mode != "rw") {
        problem = "--mount mode must be ro or rw: " + m;
        return std::nullopt;
      }
      mount.read_only = mode == "ro";
    }
    policy.mounts.push_back(mount);
  }
  for (const std::string& kv : f.env) {
    if (kv.find('=') == std::string::npos) {
      problem = "--env wants K=V, got " + kv;
      return std::nullopt;
    }
  }
  return policy;
}

int usage_error(const std::string& command, const std::string& message) {
  std::cerr << "warren sandbox " << command << ": " << message << "\n";
  return 2;
}

nlohmann::json result_json(const sb::ExecResult& r) {
  return {{"exit_code", r.exit_code},
          {"signal", r.signal},
          {"timed_out", r.timed_out},
          {"idle_timed_out", r.idle_timed_out},
          {"oom_killed", r.oom_killed},
          {"stdout", r.stdout_data},
          {"stderr", r.stderr_data},
          {"truncated", r.truncated},
          {"duration_ms", r.duration.count()},
          {"peak_memory_bytes", r.peak_memory_bytes},
          {"cpu_time_ms", r.cpu_time.count() / 1000},
          {"notes", r.notes}};
}

std::string dump_line(const nlohmann::json& j) {
  return json_text(j) + "\n";
}

// With --workspace, the folder behind a bounded overlay (sandbox_workspace.cpp). Where there can be
// none (rootless outside Warren's own namespaces; a filesystem without idmapped mounts), the folder
// is bound as it is and `unbounded` says why. "" or the usage error.
std::string bound_folder(sb::Policy& policy, std::unique_ptr<FolderWorkspace>& folder,
                         std::string& unbounded) {
  if (policy.workspace.empty()) return "";
  std::error_code ec;
  if (!std::filesystem::is_directory(policy.workspace, ec))
    return "--workspace " + policy.workspace + " is not a directory";
  if (!sb::can_mount_workspaces()) {
    unbounded = "rootless, outside Warren's own namespaces: user namespaces not allowed here?";
    return "";
  }
  auto opened = FolderWorkspace::open(policy.workspace, policy.limits.disk_bytes);
  if (!opened) {
    unbounded = opened.error().message;
    return "";
  }
  folder = std::move(*opened);
  folder->use_in(policy);
  return "";
}

// Once the sandbox has ended: the folder's changes written into it, and what the user should
// know added to `notes`. False, the error printed, when they could not be written.
bool finish_folder(const std::string& command, const sb::Policy& policy,
                   std::unique_ptr<FolderWorkspace>& folder, const std::string& unbounded,
                   std::vector<std::string>& notes) {
  if (!folder) {
    if (!unbounded.empty())
      notes.push_back("the workspace is " + policy.workspace +
                      " itself: what commands write there is not bounded (" + unbounded + ")");
    return true;
  }
  auto written = folder->write_back();
  folder.reset();
  if (!written) {
    std::cerr << "warren sandbox " << command << ": " << written.error().message << "\n";
    return false;
  }
  notes.insert(notes.end(), written->begin(), written->end());
  return true;
}

int run_exec(const ExecFlags& f) {
  std::string problem;
  auto policy = to_policy(f.sandbox, problem);
  if (!policy) return usage_error("exec", problem);
  sb::Command command{f.command, std::nullopt};
  if (f.pass_stdin) {
    std::string error;
    command.stdin_data = read_input("-", error);
  }
  std::unique_ptr<FolderWorkspace> folder;
  std::string unbounded;
  if (problem = bound_folder(*policy, folder, unbounded); !problem.empty())
    return usage_error("exec", problem);
  auto result = sb::run(*policy, command);
  if (!result) return usage_error("exec", result.error().message);
  sb::ExecResult& r = *result;
  const bool written = finish_folder("exec", *policy, folder, unbounded, r.notes);
  if (f.json) {
    write_stdout(dump_line(result_json(r)));
  } else {
    write_stdout(r.stdout_data);
    std::cerr << r.stderr_data;
    for (const std::string& note : r.notes) std::cerr << "warren sandbox: " << note << "\n";
  }
  if (!written) return 1;
  // Exit status: the command's; 124 on timeout, 137 when killed for memory, 128+N for signal N.
  if (r.timed_out || r.idle_timed_out) return 124;
  if (r.oom_killed) return 137;
  if (r.signal) return 128 + r.signal;
  return r.exit_code;
}

struct ShellFlags {
  PolicyFlags sandbox;
  std::string save_snapshot;
  bool json = false;
};

// One session; each line read from stdin is one command. Interactive use gets a prompt; --json
// prints one result object per command (for scripts). The last command's status.
int run_shell_session(const ShellFlags& f, const sb::Policy& policy) {
  auto session = sb::Session::start(policy);
  if (!session) return usage_error("shell", session.error().message);
  const bool interactive = isatty(0) && !f.json;
  int last = 0;
  std::string line;
  while (true) {
    if (interactive) {
      std::cerr << "sandbox" << (last ? " [" + std::to_string(last) + "]" : "") << "$ "
                << std::flush;
    }
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    auto r = (*session)->exec(line);
    if (!r) {
      std::cerr << "warren sandbox shell: " << r.error().message << "\n";
      return 1;
    }
    last = r->timed_out ? 124 : r->exit_code;
    if (f.json) {
      write_stdout(dump_line(result_json(*r)));
    } else {
      write_stdout(r->stdout_data);
      std::cerr << r->stderr_data << (r->timed_out ? "warren sandbox shell: timed out\n" : "");
    }
    if (!(*session)->alive()) break;
  }
  if (!f.save_snapshot.empty()) {
    if (auto saved = (*session)->snapshot(f.save_snapshot); !saved) {
      std::cerr << "warren sandbox shell: " << saved.error().message << "\n";
      return 1;
    }
    if (!f.json) std::cerr << "warren sandbox shell: snapshot saved to " << f.save_snapshot << "\n";
  }
  return last;
}

// A session on a terminal, or one command per input line; with --workspace as root, the folder
// gets the session's changes when it ends.
int run_shell(const ShellFlags& f) {
  std::string problem;
  auto policy = to_policy(f.sandbox, problem);
  if (!policy) return usage_error("shell", problem);
  std::unique_ptr<FolderWorkspace> folder;
  std::string unbounded;
  if (problem = bound_folder(*policy, folder, unbounded); !problem.empty())
    return usage_error("shell", problem);
  std::vector<std::string> notes;
  // A person at a terminal gets a real one: bash on a pty, relayed in raw mode.
  if (isatty(0) && isatty(1) && !f.json && f.save_snapshot.empty()) {
    const int status = run_interactive_shell(*policy);
    const bool written = finish_folder("shell", *policy, folder, unbounded, notes);
    for (const std::string& note : notes) std::cerr << "warren sandbox: " << note << "\n";
    return written ? status : 1;
  }
  const int last = run_shell_session(f, *policy);
  const bool written = finish_folder("shell", *policy, folder, unbounded, notes);
  for (const std::string& note : notes) std::cerr << "warren sandbox: " << note << "\n";
  return written ? last : 1;
}

}  // namespace

void add_sandbox_commands(CLI::App& app, int& exit_code) {
  CLI::App* sandbox = app.add_subcommand("sandbox", "Run commands in isolated sandboxes");
  sandbox->require_subcommand(1);
  auto f = std::make_shared<ExecFlags>();
  CLI::App* exec = sandbox->add_subcommand(
      "exec", "Run one command in a sandbox: exec [flags] -- CMD [ARGS...]");
  add_policy_flags(exec, f->sandbox);
  exec->add_flag("--stdin", f->pass_stdin, "pass this command's standard input to the sandbox");
  exec->add_flag("--json", f->json, "print one JSON object with the result");
  exec->add_option("command", f->command, "the command and its arguments (after --)")->required();
  exec->callback([f, &exit_code] { exit_code = run_exec(*f); });

  auto sh = std::make_shared<ShellFlags>();
  CLI::App* shell = sandbox->add_subcommand(
      "shell",
      "A persistent sandboxed shell: one command per input line (cwd, env and "
      "background jobs carry over)");
  add_policy_flags(shell, sh->sandbox);
  shell->add_flag("--json", sh->json, "print one JSON result per command");
  shell->add_option("--save-snapshot", sh->save_snapshot,
                    "when input ends, save the session's writable layer and workspace to this new "
                    "directory (start sandboxes from it with --snapshot)");
  shell->callback([sh, &exit_code] { exit_code = run_shell(*sh); });

  auto b = std::make_shared<BenchOptions>();
  CLI::App* bench = sandbox->add_subcommand(
      "bench", "Start latency and throughput of sandboxed /bin/true (and of bwrap)");
  bench->add_option("--runs", b->runs, "commands per measurement")->check(CLI::PositiveNumber);
  bench->add_option("--concurrency", b->concurrency, "workers for the throughput figure")
      ->check(CLI::PositiveNumber);
  bench->add_option("--idle", b->idle, "also hold N idle sessions and report host memory each")
      ->check(CLI::NonNegativeNumber);
  bench
      ->add_option("--rounds", b->rounds,
                   "measure N times, warren and bwrap alternating, and report the medians")
      ->check(CLI::PositiveNumber);
  bench->add_flag("--compare-bwrap", b->compare_bwrap, "measure bwrap --unshare-all the same way");
  bench->add_flag("--compare-floor", b->compare_floor,
                  "measure /bin/true without a sandbox the same way (the machine's floor)");
  bench
      ->add_option("--one-shot", b->one_shot,
                   "instead, time N pairs of `warren sandbox exec -- /bin/true` and bwrap's "
                   "/bin/true as whole commands, alternating (wall and CPU time, medians)")
      ->check(CLI::PositiveNumber);
  bench->add_flag("--json", b->json, "print the figures as JSON");
  bench->callback([b, &exit_code] {
    exit_code = b->one_shot > 0 ? run_one_shot_bench(b->one_shot, b->json) : run_sandbox_bench(*b);
  });
}

}  // namespace warren::cli
