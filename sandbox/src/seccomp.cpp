#include "seccomp.hpp"

#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

namespace warren::sandbox::detail {

namespace {

using Json = nlohmann::json;
using Context = std::unique_ptr<void, void (*)(scmp_filter_ctx)>;

tl::unexpected<Error> fail(const std::string& message) {
  return tl::unexpected(Error{"seccomp policy: " + message});
}

struct ErrnoName {
  const char* name;
  int value;
};
constexpr ErrnoName kErrnos[] = {{"EPERM", EPERM}, {"EACCES", EACCES}, {"ENOSYS", ENOSYS}};

struct IoctlName {
  const char* name;
  unsigned long value;
};
constexpr IoctlName kIoctls[] = {{"TIOCSTI", TIOCSTI}, {"TIOCLINUX", TIOCLINUX}};

struct FamilyName {
  const char* name;
  unsigned value;
};
// The socket families a policy may allow. Every family at or above kFamilyLimit is refused
// whatever the policy says (vsock is 40, and new families are added at the top).
constexpr unsigned kFamilyLimit = 32;
constexpr FamilyName kFamilies[] = {{"AF_UNIX", AF_UNIX},
                                    {"AF_INET", AF_INET},
                                    {"AF_INET6", AF_INET6},
                                    {"AF_NETLINK", AF_NETLINK},
                                    {"AF_PACKET", AF_PACKET}};

constexpr std::uint64_t kNamespaceFlags[] = {CLONE_NEWNS,     CLONE_NEWUTS, CLONE_NEWIPC,
                                             CLONE_NEWUSER,   CLONE_NEWPID, CLONE_NEWNET,
                                             CLONE_NEWCGROUP, 0x00000080 /* CLONE_NEWTIME */};

Result<int> syscall_number(const Json& name) {
  if (!name.is_string()) return fail("syscall names must be strings");
  const int nr = seccomp_syscall_resolve_name(name.get<std::string>().c_str());
  if (nr == __NR_SCMP_ERROR) return fail("unknown system call '" + name.get<std::string>() + "'");
  return nr;
}

// The refusals for socket() and socketpair() with a family not in `allowed` (a bit per family
// below kFamilyLimit). The domain is an int but seccomp sees the whole register, and the kernel
// ignores its upper half: a value of 2^32 or more is refused outright, so the rules below it may
// compare 64 bits. The families below the limit that are refused are grouped into aligned blocks
// of a power of two (4 to 7: one masked compare), a dozen rules instead of one per family.
std::vector<scmp_arg_cmp> family_refusals(std::uint32_t allowed) {
  std::vector<scmp_arg_cmp> rules{SCMP_A0_64(SCMP_CMP_GE, kFamilyLimit)};
  for (unsigned start = 0; start < kFamilyLimit;) {
    if (allowed & (1u << start)) {
      ++start;
      continue;
    }
    unsigned size = 1;  // the largest aligned block from `start` with no allowed family in it
    while (start % (size * 2) == 0 && start + size * 2 <= kFamilyLimit &&
           (allowed & (((1ull << (size * 2)) - 1) << start)) == 0)
      size *= 2;
    rules.push_back(SCMP_A0_64(SCMP_CMP_MASKED_EQ, ~std::uint64_t{size - 1}, start));
    start += size;
  }
  return rules;
}

}  // namespace

Result<SeccompProgram> compile_seccomp_policy(const std::string& text, const std::string& source) {
  const Json policy = Json::parse(text, nullptr, false);
  if (!policy.is_object()) return fail(source + " is not a JSON object");

  int deny_errno = EPERM;
  if (policy.contains("errno")) {
    bool known = false;
    for (const auto& e : kErrnos)
      if (policy["errno"] == e.name) deny_errno = e.value, known = true;
    if (!known) return fail("errno must be EPERM, EACCES or ENOSYS");
  }

  Context ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  if (!ctx) return fail("seccomp_init failed");
  // Foreign architectures (and x32, which libseccomp treats as one) get the refusal, not a kill.
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(deny_errno));
  // A binary tree of syscall numbers: the kernel prepares it in half the time of the default
  // linear filter (39 against 77 us per sandbox, 2026-11-24), and it runs faster as well.
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);

  auto add = [&](uint32_t action, int nr, unsigned count, const scmp_arg_cmp* args) -> bool {
    return seccomp_rule_add_array(ctx.get(), action, nr, count, args) == 0;
  };
  for (const char* list : {"deny", "enosys"}) {
    if (!policy.contains(list)) continue;
    if (!policy[list].is_array()) return fail(std::string(list) + " must be an array");
    const uint32_t action =
        std::string_view(list) == "deny" ? SCMP_ACT_ERRNO(deny_errno) : SCMP_ACT_ERRNO(ENOSYS);
    for (const Json& name : policy[list]) {
      auto nr = syscall_number(name);
      if (!nr) return tl::unexpected(nr.error());
      if (!add(action, *nr, 0, nullptr))
        return fail("cannot add a rule for " + name.get<std::string>());
    }
  }
  if (policy.value("deny_namespace_clone_flags", false)) {
    for (std::uint64_t flag : kNamespaceFlags) {
      const scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag);
      if (!add(SCMP_ACT_ERRNO(deny_errno), SCMP_SYS(clone), 1, &cmp))
        return fail("cannot add the clone flag rules");
    }
  }
  if (policy.contains("deny_ioctls")) {
    for (const Json& name : policy["deny_ioctls"]) {
      const IoctlName* found = nullptr;
      for (const auto& i : kIoctls)
        if (name == i.name) found = &i;
      if (!found) return fail("unknown ioctl " + name.dump() + " (known: TIOCSTI, TIOCLINUX)");
      // The request is an int: compare its low 32 bits only.
      const scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, found->value);
      if (!add(SCMP_ACT_ERRNO(deny_errno), SCMP_SYS(ioctl), 1, &cmp))
        return fail("cannot add the ioctl rules");
    }
  }

  if (policy.contains("socket_families")) {
    std::uint32_t allowed = 0;
    if (!policy["socket_families"].is_array()) return fail("socket_families must be an array");
    for (const Json& name : policy["socket_families"]) {
      const FamilyName* found = nullptr;
      for (const auto& f : kFamilies)
        if (name == f.name) found = &f;
      if (!found)
        return fail("unknown socket family " + name.dump() +
                    " (known: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET)");
      allowed |= 1u << found->value;
    }
    // EAFNOSUPPORT, as a kernel without the family says: programs fall back on it.
    for (const scmp_arg_cmp& cmp : family_refusals(allowed))
      for (int nr : {SCMP_SYS(socket), SCMP_SYS(socketpair)})
        if (!add(SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1, &cmp))
          return fail("cannot add the socket family rules");
  }

  // Export the BPF program through a memfd (libseccomp 2.5 exports to a descriptor).
  const int fd = memfd_create("warren-seccomp", MFD_CLOEXEC);
  if (fd < 0) return fail(std::string("memfd_create: ") + std::strerror(errno));
  if (seccomp_export_bpf(ctx.get(), fd) != 0) {
    close(fd);
    return fail("exporting the filter failed");
  }
  const off_t size = lseek(fd, 0, SEEK_END);
  SeccompProgram program;
  program.instructions.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
  const ssize_t n = pread(fd, program.instructions.data(), static_cast<std::size_t>(size), 0);
  close(fd);
  if (n != size) return fail("reading the exported filter failed");
  return program;
}

}  // namespace warren::sandbox::detail
