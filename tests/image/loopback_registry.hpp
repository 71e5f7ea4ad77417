// A real registry on loopback (Debian's docker-registry), as a registry the operator's machine
// can reach: tests publish images to it and pull them from it. It speaks plain HTTP, so it is
// listed as insecure in a registries.conf (containers-registries.conf(5)), the way an operator
// names a private registry; `mirror` maps another registry, or a namespace of one, onto it as a
// mirror would (docker.io: Docker Hub's names, short ones included, come from here).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace warren::testing {

class LoopbackRegistry {
 public:
  // `mirror`: "docker.io" or "docker.io/NAMESPACE", served from this registry (its NAMESPACE);
  // "" for none.
  explicit LoopbackRegistry(const std::filesystem::path& dir, const std::string& mirror = "") {
    const int port = free_port();
    address_ = "127.0.0.1:" + std::to_string(port);
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "config.yml")
        << "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
        << (dir / "data").string() << "\nhttp:\n  addr: " << address_ << "\n";
    std::ofstream conf(dir / "registries.conf");
    conf << "[[registry]]\nlocation = \"" << address_ << "\"\ninsecure = true\n";
    if (!mirror.empty())
      conf << "\n[[registry]]\nprefix = \"" << mirror << "\"\nlocation = \"" << address_
           << (mirror.find('/') == std::string::npos ? "" : mirror.substr(mirror.find('/')))
           << "\"\ninsecure = true\n";
    conf_ = (dir / "registries.conf").string();
    const std::string config = (dir / "config.yml").string(), log = (dir / "log").string();
    pid_ = fork();
    if (pid_ == 0) {
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(out, 1);
      dup2(out, 2);
      execlp("docker-registry", "docker-registry", "serve", config.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200 && !answers(port); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ~LoopbackRegistry() { stop(); }
  LoopbackRegistry(const LoopbackRegistry&) = delete;
  LoopbackRegistry& operator=(const LoopbackRegistry&) = delete;
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  const std::string& address() const { return address_; }
  // The registries.conf that names it (CONTAINERS_REGISTRIES_CONF).
  const std::string& registries_conf() const { return conf_; }

 private:
  static int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }
  static bool answers(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return ok;
  }
  std::string address_, conf_;
  pid_t pid_ = -1;
};

}  // namespace warren::testing
