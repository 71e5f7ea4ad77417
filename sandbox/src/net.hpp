// Network namespaces: empty but for a loopback interface that is up, so that programs that talk to
// themselves over 127.0.0.1 work. Nothing else exists, so nothing leaves.
//
// Creating a network namespace costs about 0.5 ms, and tearing one down more, in a kernel worker
// (2026-11-24, this machine). As root, a NetnsPool keeps namespaces for reuse: they are made by
// the host, so the sandbox's root has no capability over them and cannot change their
// configuration; a namespace is reused only once every process of its last sandbox is dead, which
// closes every socket it had. Rootless, each sandbox makes its own (CLONE_NEWNET) and brings its
// loopback up itself.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <vector>

#include "plan.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

// A new network namespace with its loopback up, ports below 1024 and ping open to the sandboxes'
// ids (they hold no capability there): its descriptor, the caller's.
Result<int> new_network_namespace();

class NetnsPool {
 public:
  explicit NetnsPool(std::size_t keep) : keep_(keep) {}
  ~NetnsPool();
  NetnsPool(const NetnsPool&) = delete;
  NetnsPool& operator=(const NetnsPool&) = delete;

  // A descriptor of a namespace with its loopback up (the caller owns it until release).
  Result<int> acquire();
  void release(int netns);

 private:
  std::size_t keep_;
  std::mutex lock_;
  std::vector<int> free_;
};

// The calling thread enters `netns` for as long as this lives (clone() then gives it to the new
// sandbox), and returns to the network namespace it was in: `home` when given (a descriptor of
// that namespace, which stays the caller's), else one opened for the purpose.
class EnterNetns {
 public:
  static Result<std::unique_ptr<EnterNetns>> enter(int netns, int home = -1);
  ~EnterNetns();
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;

 private:
  EnterNetns(int previous, bool owned) : previous_(previous), owned_(owned) {}
  int previous_;
  bool owned_;
};

// A network namespace of its own (loopback up, as a pooled one) whose traffic leaves through
// slirp4netns, a user-mode NAT running as this process's child for as long as this object lives:
// the sandbox reaches the internet and the host's other addresses, never the host's loopback
// (--disable-host-loopback), and nothing outside reaches in. slirp4netns itself runs in a mount
// namespace of its own with every capability dropped but the one it binds with
// (--enable-sandbox), under its own seccomp filter (--enable-seccomp). Root only: rootless, the
// namespace would have to be the sandbox's own, made after PID 1 starts.
class OutboundNetwork {
 public:
  static Result<std::unique_ptr<OutboundNetwork>> start();
  ~OutboundNetwork();
  OutboundNetwork(const OutboundNetwork&) = delete;
  OutboundNetwork& operator=(const OutboundNetwork&) = delete;
  int netns() const { return netns_; }

 private:
  OutboundNetwork(int netns, pid_t nat, int stop) : netns_(netns), nat_(nat), stop_(stop) {}
  int netns_;
  pid_t nat_;  // slirp4netns
  int stop_;   // its --exit-fd's other end: closing it ends slirp4netns
};

// What /etc/resolv.conf says in a sandbox with an outbound network: slirp4netns's DNS forwarder.
inline constexpr const char* kOutboundResolvConf = "nameserver 10.0.2.3\n";

// Child side, where the sandbox made its own namespace (rootless, or one-shot): brings up its
// loopback and lets the sandbox's ids bind low ports and ping.
WARREN_CHILD_CODE void bring_loopback_up(const ChildPlan& plan);

}  // namespace warren::sandbox::detail
