// Privileges::Container and Network::Outbound, what task images need of a container: each case
// checks what holds on the host, not only what the command saw.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

namespace fs = std::filesystem;

using ContainerSandbox = testing::SandboxFixture;
using testing::host_address;
using testing::listen_on;

// Docker's default capability set, as /proc/PID/status prints it: chown, dac_override, fowner,
// fsetid, kill, setgid, setuid, setpcap, net_bind_service, net_raw, sys_chroot, mknod,
// audit_write, setfcap.
constexpr const char* kDockerDefault = "00000000a80425fb";

// A workspace owned by a range of its own, which the sandbox runs in.
struct OwnWorkspace {
  OwnWorkspace() : ids(IdRange::take().value()) {
    dir = fs::temp_directory_path() / ("warren_privileges_" + std::to_string(getpid()));
    fs::create_directories(dir);
    EXPECT_EQ(chown(dir.c_str(), ids.base(), ids.base()), 0);
  }
  ~OwnWorkspace() { fs::remove_all(dir); }
  IdRange ids;
  fs::path dir;
};

TEST_F(ContainerSandbox, ContainerPrivilegesHoldInsideTheSandboxOnly) {
  OwnWorkspace ws;
  // A file of the host's root in the workspace: its owner is no id of the sandbox's.
  std::ofstream(ws.dir / "host-secret") << "secret";
  fs::permissions(ws.dir / "host-secret", fs::perms::owner_read | fs::perms::owner_write);
  policy.workspace = ws.dir;
  policy.host_ids = ws.ids.base();
  const std::string probe =
      "grep CapEff /proc/self/status; touch mine && chown 42:42 mine 2>&1; echo chown=$?;"
      " cat host-secret 2>&1; hostname other 2>&1; echo hostname=$?;"
      " chroot / true 2>&1; echo chroot=$?";

  const ExecResult plain = run_sh(probe);
  EXPECT_NE(plain.stdout_data.find("CapEff:\t0000000000000000\n"), std::string::npos)
      << plain.stdout_data;
  EXPECT_NE(plain.stdout_data.find("chown=1"), std::string::npos) << plain.stdout_data;
  EXPECT_NE(plain.stdout_data.find("chroot=125"), std::string::npos) << plain.stdout_data;
  struct stat st {};
  ASSERT_EQ(stat((ws.dir / "mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ws.ids.base());

  policy.privileges = Privileges::Container;
  const ExecResult container = run_sh(probe);
  EXPECT_NE(container.stdout_data.find(std::string("CapEff:\t") + kDockerDefault + "\n"),
            std::string::npos)
      << container.stdout_data;
  EXPECT_NE(container.stdout_data.find("chown=0"), std::string::npos) << container.stdout_data;
  // The chown landed in the sandbox's own range on the host...
  ASSERT_EQ(stat((ws.dir / "mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ws.ids.base() + 42);
  EXPECT_EQ(st.st_gid, ws.ids.base() + 42);
  // ...dac_override does not open what the host's root owns, and what Docker does not give
  // (sys_admin) stays refused.
  EXPECT_NE(container.stdout_data.find("host-secret: Permission denied"), std::string::npos)
      << container.stdout_data;
  EXPECT_EQ(container.stdout_data.find("secret\n"), std::string::npos);
  EXPECT_NE(container.stdout_data.find("hostname=1"), std::string::npos) << container.stdout_data;
  // chroot, as Docker allows a container with sys_chroot (sshd's privilege separation uses it).
  EXPECT_NE(container.stdout_data.find("chroot=0"), std::string::npos) << container.stdout_data;
}

// slirp4netns processes whose parent is this one.
int nat_children() {
  int n = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string pid, comm, state, ppid;
    if (stat >> pid >> comm >> state >> ppid && comm == "(slirp4netns)" &&
        ppid == std::to_string(getpid()))
      ++n;
  }
  return n;
}

TEST_F(ContainerSandbox, AnOutboundNetworkReachesOutButNotTheHostsLoopback) {
  if (!testing::tun_usable()) GTEST_SKIP() << "no tun device: slirp4netns cannot run here";
  const std::string host = host_address();
  ASSERT_FALSE(host.empty()) << "the host has no IPv4 address but its loopback";
  auto [loopback, loopback_port] = listen_on(htonl(INADDR_LOOPBACK));
  auto [outside, outside_port] = listen_on(htonl(INADDR_ANY));
  auto send_to = [](const std::string& address, int port) {
    return "bash -c 'echo hi > /dev/tcp/" + address + "/" + std::to_string(port) +
           "' 2>/dev/null; echo $?;";
  };
  policy.network = Network::Outbound;
  const ExecResult r = run_sh("ip -4 -o addr show tap0 | grep -o 'inet [0-9./]*';" +
                              send_to("10.0.2.2", loopback_port) +
                              send_to("127.0.0.1", loopback_port) + send_to(host, outside_port));
  // Its own address; the host's loopback (10.0.2.2 is slirp's name for it) and its own
  // loopback reach nothing; the host's other address does.
  EXPECT_EQ(r.stdout_data, "inet 10.0.2.100/24\n1\n1\n0\n") << r.stderr_data;
  EXPECT_LT(accept(loopback, nullptr, nullptr), 0);
  const int conn = accept(outside, nullptr, nullptr);
  EXPECT_GE(conn, 0) << "the sandbox did not reach " << host;
  if (conn >= 0) close(conn);
  close(loopback);
  close(outside);
  EXPECT_EQ(nat_children(), 0) << "slirp4netns outlived its sandbox";

  // Each sandbox has its own: two listen on one port at the same time.
  const std::string serve =
      "python3 -c 'import socket, time; s = socket.socket(); s.bind((\"0.0.0.0\", 8000)); "
      "s.listen(); time.sleep(1); print(\"bound\")'";
  ExecResult first, second;
  std::thread other([&] { first = run_sh(serve); });
  second = run_sh(serve);
  other.join();
  EXPECT_EQ(first.stdout_data, "bound\n") << first.stderr_data;
  EXPECT_EQ(second.stdout_data, "bound\n") << second.stderr_data;
}

// A private network, as a docker-compose project's: each member its own namespace and address,
// so two serve on one port at once and reach each other's; the host's addresses and a sandbox
// outside the network reach none of them, and no member reaches out.
TEST_F(ContainerSandbox, PrivateNetworkMembersReachOneAnotherAndNothingElse) {
  auto network = PrivateNetwork::create();
  ASSERT_TRUE(network) << network.error().message;
  auto a = (*network)->join();
  auto b = (*network)->join();
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ((*a)->address(), "10.89.0.2");
  EXPECT_EQ((*b)->address(), "10.89.0.3");
  // Each binds 8000 on every address, tells the other its name (trying again while the other
  // does not listen yet, for 10 s), and prints what it was told.
  const std::string exchange =
      "import socket, sys, time\n"
      "s = socket.socket(); s.bind(('0.0.0.0', 8000)); s.listen()\n"
      "for attempt in range(100):\n"  // the other may not listen yet: python starts slowly
      "    try:\n"
      "        c = socket.create_connection((sys.argv[1], 8000), timeout=5); break\n"
      "    except ConnectionRefusedError:\n"
      "        time.sleep(0.1)\n"
      "c.sendall(sys.argv[2].encode())\n"
      "c.close(); conn, _ = s.accept(); print(conn.recv(100).decode())\n";
  auto member_run = [&](const std::shared_ptr<NetworkMember>& m, const std::string& peer,
                        const std::string& name) {
    Policy p = policy;
    p.network = Network::Private;
    p.member = m;
    auto r = runtime.run(p, Command{{"python3", "-c", exchange, peer, name}, std::nullopt});
    return r ? r->stdout_data + r->stderr_data : r.error().message;
  };
  std::string from_b;
  std::thread other([&] { from_b = member_run(*a, (*b)->address(), "a"); });
  const std::string from_a = member_run(*b, (*a)->address(), "b");
  other.join();
  EXPECT_EQ(from_b, "b\n");
  EXPECT_EQ(from_a, "a\n");

  // Outside the network: neither the host nor a sandbox of no network reaches a member's server
  // (this host's default route may answer any address itself: what counts is that the member
  // accepted nothing).
  const std::string accept_one =
      "import socket\ns = socket.socket(); s.bind(('0.0.0.0', 8000)); s.listen(); s.settimeout(3)\n"
      "try:\n    s.accept(); print('accepted')\nexcept socket.timeout:\n    print('none')\n";
  std::string served;
  std::thread server([&] {
    Policy p = policy;
    p.network = Network::Private;
    p.member = *a;
    auto r = runtime.run(p, Command{{"python3", "-c", accept_one}, std::nullopt});
    served = r ? r->stdout_data + r->stderr_data : r.error().message;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string reach =
      "bash -c 'echo hi > /dev/tcp/" + (*a)->address() + "/8000' 2>/dev/null; echo $?";
  (void)std::system(("timeout 1 " + reach + " >/dev/null").c_str());
  EXPECT_EQ(run_sh(reach).stdout_data, "1\n");
  server.join();
  EXPECT_EQ(served, "none\n");
  auto [host_listener, host_port] = listen_on(htonl(INADDR_ANY));
  const std::string host = host_address();
  Policy inside = policy;
  inside.network = Network::Private;
  inside.member = *b;
  auto out = runtime.run(inside, Command{{"bash", "-c",
                                          "echo hi > /dev/tcp/" + host + "/" +
                                              std::to_string(host_port) + " 2>/dev/null; echo $?"},
                                         std::nullopt});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->stdout_data, "1\n");
  close(host_listener);
}

}  // namespace
}  // namespace warren::sandbox
