// warren/sandbox: run a command in an isolated sandbox and collect what it did.
//
// Isolation (all on by default): new user, pid, mount, network, ipc, uts and cgroup namespaces;
// a fresh root (tmpfs) with read-only binds of the host system and the host's secrets masked;
// no capabilities, no_new_privs, a seccomp filter, rlimits; cgroup limits on memory (no swap),
// pids and CPU. Facts and the hardening checklist: docs/sandbox-facts.md.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <utility>  // before Asio 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <tl/expected.hpp>

namespace warren::sandbox {

struct Error {
  std::string message;  // one line a user can act on
};

template <class T>
using Result = tl::expected<T, Error>;

struct Mount {
  std::string source;  // host path
  std::string target;  // path inside the sandbox
  bool read_only = true;
};

// None: a namespace of the sandbox's own with only its loopback. Host: the host's network.
// Outbound: a namespace of its own whose traffic leaves through a user-mode NAT (slirp4netns, as
// rootless containers use): the internet and the host's other addresses are reachable, the host's
// loopback is not, and servers inside are reachable from inside only, so trials never collide on a
// port. DNS at 10.0.2.3 (the sandbox's /etc/resolv.conf says so). Root only. Private: the
// namespace of a PrivateNetwork's member (Policy::member), shared with no other sandbox's.
enum class Network { None, Host, Outbound, Private };

class PrivateNetwork;

// One member of a PrivateNetwork: a network namespace with its loopback and eth0 up, eth0 holding
// `address()` on the network's bridge. Keeps its network alive.
class NetworkMember {
 public:
  ~NetworkMember();
  NetworkMember(const NetworkMember&) = delete;
  NetworkMember& operator=(const NetworkMember&) = delete;
  const std::string& address() const { return address_; }
  int netns() const { return netns_; }

 private:
  friend class PrivateNetwork;
  NetworkMember(int netns, std::string address, std::shared_ptr<PrivateNetwork> network)
      : netns_(netns), address_(std::move(address)), network_(std::move(network)) {}
  int netns_;
  std::string address_;
  std::shared_ptr<PrivateNetwork> network_;
};

// A network of its own for several sandboxes, as a docker-compose project's: a bridge in a
// network namespace that nothing else is in (no route out, nothing in from the host), each member
// a namespace joined to it by a veth pair with an address of 10.89.0.0/24. Members reach one
// another by address, on any port, and by name through the /etc/hosts lines their sandboxes are
// given (Policy::hosts). Root only. Not thread-safe: join from one thread.
class PrivateNetwork : public std::enable_shared_from_this<PrivateNetwork> {
 public:
  static Result<std::shared_ptr<PrivateNetwork>> create();
  ~PrivateNetwork();
  PrivateNetwork(const PrivateNetwork&) = delete;
  PrivateNetwork& operator=(const PrivateNetwork&) = delete;
  // A new member, with the next address (10.89.0.2 first).
  Result<std::shared_ptr<NetworkMember>> join();

 private:
  explicit PrivateNetwork(int hub) : hub_(hub) {}
  int hub_;  // the namespace that holds the bridge
  int joined_ = 0;
};

// What the sandbox's commands may do as its root, inside its own user namespace (never over the
// host's objects: files they do not own through the id range, the host's network, other
// sandboxes). None: no capability, the default. Container: Docker's default set (chown,
// dac_override, fowner, fsetid, kill, setgid, setuid, setpcap, setfcap, net_bind_service,
// net_raw, sys_chroot, mknod, audit_write), what package managers and init scripts in an image
// expect of a container's root (apt-get drops to its _apt user and chowns its folders). The seccomp
// policy still applies (chroot, mount and the rest stay refused).
enum class Privileges { None, Container };

struct Limits {
  std::uint64_t memory_bytes = 1ULL << 30;     // 0: no limit; swap is always 0
  std::uint32_t pids = 512;                    // 0: no limit
  double cpus = 1.0;                           // CPU quota in cores; 0: no limit
  std::uint64_t disk_bytes = 1ULL << 30;       // size of the writable layer (the root tmpfs)
  std::uint64_t output_bytes = 1ULL << 20;     // per stream; beyond it head and tail are kept
  std::chrono::milliseconds timeout{60000};    // wall clock; 0: none
  std::chrono::milliseconds idle_timeout{0};   // no output for this long; 0: none
  std::uint64_t file_size_bytes = 1ULL << 30;  // RLIMIT_FSIZE
  std::uint64_t open_files = 1024;             // RLIMIT_NOFILE
  // What Session::snapshot() may copy to the host: data bytes (holes of sparse files are not
  // written) and files and directories, the root layer and the workspace together.
  std::uint64_t snapshot_bytes = 4ULL << 30;
  std::uint64_t snapshot_files = 1000000;
};

// 65536 host ids for sandboxes to run as (their ids 0..65535), taken by no one else on the host
// while this object lives, in this process or another. As root every sandbox runs in a range:
// one given by Policy::host_ids, or one taken for it. Take one for a workspace and every sandbox
// that runs on it (make_workspace, Policy::host_ids), so that what one task's sandboxes own and
// run as is never another's. Rootless, the range is the caller's own id and base() is 0.
class IdRange {
 public:
  static Result<IdRange> take();
  // The range beginning at `base` (a workspace's, when a run resumes on it), or an error when it
  // is not a range or another holder has it. The shared range (100000) is no one's: taking it
  // holds nothing.
  static Result<IdRange> take(unsigned base);
  IdRange(IdRange&& other) noexcept;
  IdRange& operator=(IdRange&&) = delete;
  IdRange(const IdRange&) = delete;
  ~IdRange();
  unsigned base() const { return base_; }  // the host id of the sandbox's root

 private:
  IdRange(int lock, unsigned base) : lock_(lock), base_(base) {}
  int lock_;
  unsigned base_;
};

struct Policy {
  Limits limits;
  // The host id of the sandbox's root, the base() of an IdRange the caller holds for as long as
  // the sandbox and its workspace live. 0: the range the workspace (or the snapshot) was made
  // for, its owner's; with neither, a range taken for this sandbox alone. Ignored rootless.
  unsigned host_ids = 0;
  Network network = Network::None;
  Privileges privileges = Privileges::None;
  // An image directory: the read-only lower layer of the root, under a writable layer of the
  // sandbox's own (limits.disk_bytes), gone with it. Root-owned files of the image are the
  // sandbox root's (an idmapped mount, as root). Empty: the host-system view (read-only binds).
  std::string rootfs;
  // A host folder that is the whole root, written in place and kept when the sandbox ends: one
  // overlay_workspace made over an image, for the sandboxes of one task to share (the agent's,
  // then the tests'). Takes the place of `rootfs` and of the host-system view.
  std::string root;
  std::string workspace;  // host directory bound read-write at workspace_path (the working dir)
  // Where the workspace appears, and the working directory: an absolute path outside the system
  // directories (a task's WORKDIR, such as /app). Missing parents are made.
  std::string workspace_path = "/workspace";
  std::vector<Mount> mounts;
  std::vector<std::string> env;  // KEY=VALUE, added to a minimal default environment
  std::string seccomp_policy;    // a JSON policy file; empty: configs' built-in default
  std::string hostname = "sandbox";
  // Network::Private: the member whose namespace the sandbox runs in (several sandboxes may share
  // one, as a docker-compose service's processes do).
  std::shared_ptr<const NetworkMember> member;
  // Lines added to the root's /etc/hosts, "ADDRESS NAME..." (a root of its own only: rootfs or
  // root; the host-system view keeps the host's).
  std::vector<std::string> hosts;
  // A directory written by Session::snapshot(): the sandbox's writable layer starts as that
  // snapshot's, and so does its /workspace unless `workspace` is set. Both are copy-on-write
  // overlays over the snapshot, which is never changed, so any number of sandboxes can start
  // from one snapshot at once without copying it.
  std::string snapshot;
};

struct Command {
  std::vector<std::string> argv;
  std::optional<std::string> stdin_data;  // stdin is closed unless given
  // A terminal (the slave side of a pty the caller opened, O_NOCTTY) to be the command's stdin,
  // stdout, stderr and controlling terminal, for interactive programs. Output then goes to the
  // terminal and not into the ExecResult. The caller keeps and closes its descriptor.
  int terminal = -1;
};

struct ExecResult {
  int exit_code = -1;  // the command's exit status; -1 when it was killed by a signal
  int signal = 0;      // the signal that killed it, if any
  bool timed_out = false;
  bool idle_timed_out = false;
  bool oom_killed = false;
  bool truncated = false;  // output was over the limit; head and tail were kept
  std::string stdout_data;
  std::string stderr_data;
  std::chrono::milliseconds duration{0};
  std::uint64_t peak_memory_bytes = 0;
  std::chrono::microseconds cpu_time{0};
  std::vector<std::string> notes;  // limits that could not be applied, and why
  bool recycled = false;           // ran in a sandbox that an earlier command left as new
};

namespace detail {
struct Resources;
class WarmSandboxes;
}  // namespace detail

class Session;

// Rootless, bounded workspaces are mounted in Warren's own user and mount namespaces, which one
// process per user (`warren-pause`) holds so that what one `warren` mounts is there for the next
// (src/own_namespace.cpp). join_own_namespace enters them, starting that process first if none
// runs: call it at the start of a rootless process, before any thread. As root it does nothing
// (root mounts on the host). An error says why not; workspaces are then plain folders.
Result<void> join_own_namespace();
// Whether this process can mount bounded workspaces: root, or rootless in its own namespaces.
bool can_mount_workspaces();
// A rootless Warren's own folder, private: $XDG_RUNTIME_DIR/warren, else /tmp/warren-UID. Refused
// when another user owns it.
Result<std::string> user_runtime_dir();

// One entry of a workspace made from a folder (make_workspace): `from`, relative to the folder, and
// where it goes, relative to the workspace. A directory's contents go into the directory `to`
// ("" for the top); a file becomes the file `to`. A link at `from` itself is followed (within the
// folder), as Docker's COPY does, unless `follow_link` is false: then it is copied as a link, as
// git tracks one.
struct WorkspaceFile {
  std::string from;
  std::string to;
  bool follow_link = true;
};

// Makes the new directory `dest` a sandbox's workspace (Policy::workspace) from `files` of the
// folder `root`, which may be untrusted (a task's): each `from` is resolved beneath `root`
// (openat2 RESOLVE_BENEATH), so an absolute path, "..", or a link that leads out of it is refused
// with the reason, and only regular files, directories, symlinks (as links) and fifos are copied.
// Owners move into the sandbox's id range, so that the sandbox's root owns what host root owned
// and can write it; modes, symlinks, hard links and times are kept, set-id bits dropped. Rootless,
// the copy stays the caller's, which is the sandbox's root there. On an error nothing is left.
// Host paths are attached to sandboxes by descriptor, so `dest` may be below a private (0700)
// folder.
//
// `host_ids`: the IdRange the workspace's sandboxes will run in (0: the shared range 100000).
// `limits`: what the workspace may hold. As root, a bounded workspace is a filesystem of its own,
// a tmpfs mounted at `dest` (nosuid, nodev) with that size and inode count: a command that fills
// it gets ENOSPC and the host's disk is untouched, and inside the sandbox neither the host's path
// nor the host disk's figures show. Its pages count against the memory limit of whoever writes
// them. Remove it with remove_workspace. Rootless it is the same tmpfs, mounted in Warren's own
// namespaces (join_own_namespace), owned by the caller; outside them, or with no limits, it is a
// plain directory.
struct WorkspaceLimits {
  std::uint64_t bytes = 0;  // 0: unbounded
  std::uint64_t files = 0;  // files and directories; 0: one per KiB of `bytes`
  // The limits are room left once the files are copied, not the whole (a repository of any
  // size, plus what its agent may add).
  bool beyond_copy = false;
};
// What was copied: files, directories and links, and data bytes.
struct WorkspaceCopy {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;
};
Result<WorkspaceCopy> make_workspace(const std::string& root,
                                     const std::vector<WorkspaceFile>& files,
                                     const std::string& dest, unsigned host_ids = 0,
                                     WorkspaceLimits limits = {});

// A workspace over the folder `folder` instead of a copy of it, made at once whatever the folder's
// size: an overlay whose lower layer is the folder seen through an idmapped mount (owners moved
// into the range as make_workspace moves a copy's, read-only, nosuid, nodev) and whose upper layer
// is a bounded tmpfs of `limits` (all the workspace's sandboxes may write), with the paths
// `hidden` (relative to the folder) whited out. Several folders stack as overlayfs stacks lower
// layers, the first on top, their own whiteouts honoured: an image's layers (image::Image::layers)
// make its root without a copy. The folders are never written; changes made to them while the
// workspace lives may or may not show in it. As root, on a filesystem with idmapped mounts (ext4,
// xfs, btrfs, tmpfs); rootless, in Warren's own namespaces, where the folders are bound as they are
// (the sandbox's root is the caller): otherwise an error, and make_workspace is the way. The layers
// live beside `dest`, in workspace_layers(dest); remove_workspace(dest) removes both.
Result<void> overlay_workspace(const std::vector<std::string>& folders,
                               const std::vector<std::string>& hidden, const std::string& dest,
                               unsigned host_ids, WorkspaceLimits limits);
std::string workspace_layers(const std::string& workspace);

// Writes what the sandboxes changed in `workspace`, an overlay_workspace over the one folder
// `folder`, into the folder itself: new and changed files, links and directories, and what they
// deleted. Call it once every sandbox on the workspace has ended. Everything written is owned by
// the folder's owner and group, with no set-id bit; holes and hard links are kept; device nodes
// and sockets are left out. Nothing is followed out of the folder: where the workspace has a
// directory or a file and the folder has a link, the link is replaced, never written through.
// What it returns counts the entries and data bytes written.
Result<WorkspaceCopy> write_back_workspace(const std::string& workspace, const std::string& folder);

// Removes `path` and everything below it, bounded workspaces included (every mount at or below
// it is detached first, deepest first), as a workspace left by a killed run may be.
Result<void> remove_workspace(const std::string& path);

// make_workspace of the whole of `source`.
Result<WorkspaceCopy> copy_workspace(const std::string& source, const std::string& dest,
                                     unsigned host_ids = 0);

// The async_ forms are C++20 coroutines on Boost.Asio. Run each on one thread or on a strand: a
// sandbox's waits are not synchronised against each other. With GCC 12, name the arguments of a
// co_await'ed call instead of passing braced temporaries (`co_await rt.async_run(Policy{}, ...)`):
// that compiler destroys such temporaries twice.
//
// What a process that starts many sandboxes keeps between them: compiled seccomp policies,
// cgroups and network namespaces ready for reuse (creating them is most of the cost of a start),
// and recycled sandboxes.
//
// Recycling: once a command has ended, its sandbox may serve the next command run() is given with
// an equal policy (environment and timeouts aside), in place of a new one. Every process the
// command left is killed first; and a sandbox is recycled only when its root filesystem is exactly
// as it was new (a command that wrote a file anywhere but the workspace or a read-write mount ends
// its sandbox), it holds no IPC object, PID 1's limits are as they were, its host paths are
// unchanged, and the command neither timed out nor ran out of memory. Commands with an image root,
// a snapshot or a terminal always get a new sandbox; so do sessions, and sandboxes started without
// the spawner. What recycling checks and why it is enough: recycle.hpp.
//
// Thread-safe: share one. Sandboxes may outlive it.
class Runtime {
 public:
  struct Options {
    std::size_t keep = 256;  // cgroups and network namespaces kept for reuse, of each
    // Start sandboxes from warren-spawner, a small helper process, when it can be found
    // ($WARREN_SPAWNER, or beside the executable): cheaper than from a large process.
    bool spawner = true;
    // Recycled sandboxes kept waiting for a command (0: every command gets a new sandbox, and no
    // thread is started), and how long one may wait before a thread of the Runtime's ends it.
    // Each holds about 0.5 MiB, a cgroup, a network namespace, and its binds of host paths.
    // Recycling needs warren-spawner.
    std::size_t recycle = 64;
    std::chrono::seconds recycle_idle{30};
  };
  Runtime();
  explicit Runtime(Options options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Runs `command` under `policy` and waits for it. An Error means the sandbox could not be set
  // up; anything the command does (fail, time out, be killed) is in the ExecResult.
  Result<ExecResult> run(const Policy& policy, const Command& command);
  // The same on the caller's Asio executor: the waits for output, exit and timeouts suspend the
  // coroutine instead of blocking a thread, so one thread can supervise thousands of sandboxes.
  // The start itself (about 0.3 ms, a request to the spawner) runs inline.
  boost::asio::awaitable<Result<ExecResult>> async_run(Policy policy, Command command);

 private:
  friend class Session;
  std::shared_ptr<detail::Resources> resources_;
  std::shared_ptr<detail::WarmSandboxes> warm_;
};

// One command in a sandbox of its own, with a Runtime made for it (nothing to reuse).
Result<ExecResult> run(const Policy& policy, const Command& command);

// The host's processes whose command line contains `marker`, in every pid namespace (the host's
// /proc lists them all): how the bench and the tests see what a sandbox left running.
std::vector<pid_t> processes_on_host(const std::string& marker);

struct FileInfo {
  std::string name;
  enum class Type { File, Directory, Symlink, Other } type = Type::Other;
  std::uint64_t size = 0;
  unsigned mode = 0;  // permission bits
};

// A long-lived sandbox holding a shell: each exec() runs one command in it, and the working
// directory, environment and background processes carry over to the next. A command that times
// out is interrupted (it and whatever it started are killed) without ending the session.
// Files are read and written from the host without exec, resolved inside the sandbox's root so
// that symlinks planted in it cannot reach host files.
class Session {
 public:
  static Result<std::unique_ptr<Session>> start(Runtime& runtime, const Policy& policy);
  static Result<std::unique_ptr<Session>> start(const Policy& policy);  // with a Runtime of its own
  static boost::asio::awaitable<Result<std::unique_ptr<Session>>> async_start(Runtime& runtime,
                                                                              Policy policy);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // `timeout` 0: the policy's. ExecResult.exit_code is the command's status ($?).
  Result<ExecResult> exec(const std::string& command, std::chrono::milliseconds timeout = {});
  // The same on the caller's Asio executor. One command at a time per session.
  boost::asio::awaitable<Result<ExecResult>> async_exec(std::string command,
                                                        std::chrono::milliseconds timeout = {});
  bool alive() const;

  // Paths are absolute inside the sandbox, or relative to its working directory.
  Result<std::string> read_file(const std::string& path, std::uint64_t max_bytes = 64 << 20);
  // A file that does not exist yet is made with `mode` (0755: an executable); an existing one
  // keeps its own.
  Result<void> write_file(const std::string& path, std::string_view data, unsigned mode = 0644);
  Result<std::vector<FileInfo>> list(const std::string& path);
  // `path` and its missing parents made as the sandbox's root would make them (mode 0755);
  // folders already there, or links to folders inside the root, are kept.
  Result<void> make_directories(const std::string& path);
  Result<FileInfo> stat(const std::string& path);

  // Copies what the session's commands changed (its writable layer: everything outside the
  // read-only system directories, /proc and /dev) and its /workspace into the new directory
  // `dir`, as dir/root and dir/workspace, with owners, modes, symlinks, hard links, holes and
  // times kept and set-id bits dropped. Take it between commands. The session's processes are
  // stopped while it copies (SIGSTOP, then SIGCONT), so background jobs change nothing meanwhile.
  // Past Limits::snapshot_bytes or snapshot_files it stops, removes what it made, and says so.
  // Start sandboxes from it with Policy::snapshot.
  Result<void> snapshot(const std::string& dir);

 private:
  struct State;
  explicit Session(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace warren::sandbox
