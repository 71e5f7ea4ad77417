// Network namespace: empty but for a loopback interface, brought up here so that programs that
// talk to themselves over 127.0.0.1 work. Nothing else exists, so nothing leaves.
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "plan.hpp"

namespace warren::sandbox::detail {

WARREN_CHILD_CODE void bring_loopback_up(const ChildPlan& plan) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) child_fail(plan, "loopback socket", errno);
  ifreq req{};
  std::memcpy(req.ifr_name, "lo", 3);
  if (ioctl(fd, SIOCGIFFLAGS, &req) != 0) child_fail(plan, "loopback flags", errno);
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
  if (ioctl(fd, SIOCSIFFLAGS, &req) != 0) child_fail(plan, "loopback up", errno);
  close(fd);
}

}  // namespace warren::sandbox::detail
