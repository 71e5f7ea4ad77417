// A private network for several sandboxes (sandbox.hpp: PrivateNetwork), made with rtnetlink
// through libnl: a bridge in a network namespace of its own, and one veth pair per member whose
// bridge end stays there and whose other end is the member's eth0. Each netlink socket is opened
// inside the namespace it configures (a socket acts in the namespace it was made in), from a
// thread that enters it and leaves (EnterNetns), so no caller's thread ever changes namespace.
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "net.hpp"

namespace warren::sandbox {

namespace {

constexpr const char* kBridge = "br0";
// Every private network is a bridge of its own in a namespace of its own: all can use the same
// subnet. Members get .2 to .254, in the order they join.
constexpr const char* kSubnet = "10.89.0.";
constexpr int kFirstHost = 2, kLastHost = 254;

// Runs `configure` with a route netlink socket opened inside `netns`, on a thread of its own.
// An error names `what` and libnl's reason.
Result<void> in_namespace(int netns, const std::string& what,
                          const std::function<int(nl_sock*)>& configure) {
  Result<void> result;
  std::thread([&] {
    auto entered = detail::EnterNetns::enter(netns);
    if (!entered) {
      result = tl::unexpected(entered.error());
      return;
    }
    nl_sock* socket = nl_socket_alloc();
    int err = socket ? nl_connect(socket, NETLINK_ROUTE) : -NLE_NOMEM;
    if (err == 0) err = configure(socket);
    if (socket) nl_socket_free(socket);
    if (err < 0) result = tl::unexpected(Error{what + ": " + nl_geterror(err)});
  }).join();
  return result;
}

// Sets `name` up (and, with `master` > 0, on that bridge).
int link_up(nl_sock* socket, const char* name, int master = 0) {
  rtnl_link* link = nullptr;
  if (const int err = rtnl_link_get_kernel(socket, 0, name, &link); err < 0) return err;
  rtnl_link* change = rtnl_link_alloc();
  rtnl_link_set_flags(change, IFF_UP);
  if (master > 0) rtnl_link_set_master(change, master);
  const int err = rtnl_link_change(socket, link, change, 0);
  rtnl_link_put(change);
  rtnl_link_put(link);
  return err;
}

int index_of(nl_sock* socket, const char* name) {
  rtnl_link* link = nullptr;
  if (const int err = rtnl_link_get_kernel(socket, 0, name, &link); err < 0) return err;
  const int index = rtnl_link_get_ifindex(link);
  rtnl_link_put(link);
  return index;
}

}  // namespace

NetworkMember::~NetworkMember() {
  if (netns_ >= 0) close(netns_);
}

PrivateNetwork::~PrivateNetwork() {
  // The bridge and the members' bridge ends go with the namespace once its last member's
  // namespace is gone (each member holds the network).
  if (hub_ >= 0) close(hub_);
}

Result<std::shared_ptr<PrivateNetwork>> PrivateNetwork::create() {
  if (geteuid() != 0) return tl::unexpected(Error{"a private network needs root"});
  auto hub = detail::new_network_namespace();
  if (!hub) return tl::unexpected(hub.error());
  std::shared_ptr<PrivateNetwork> network(new PrivateNetwork(*hub));
  auto made = in_namespace(network->hub_, "making the private network's bridge", [](nl_sock* s) {
    const int err = rtnl_link_bridge_add(s, kBridge);
    return err < 0 ? err : link_up(s, kBridge);
  });
  if (!made) return tl::unexpected(made.error());
  return network;
}

Result<std::shared_ptr<NetworkMember>> PrivateNetwork::join() {
  const int host = kFirstHost + joined_;
  if (host > kLastHost)
    return tl::unexpected(Error{"a private network has room for " +
                                std::to_string(kLastHost - kFirstHost + 1) + " members"});
  auto netns = detail::new_network_namespace();
  if (!netns) return tl::unexpected(netns.error());
  std::string address = kSubnet;  // appended: GCC 12 warns falsely on literal + string
  address += std::to_string(host);
  std::shared_ptr<NetworkMember> member(
      new NetworkMember(*netns, std::move(address), shared_from_this()));
  ++joined_;
  // The pair is made in the hub; its peer goes straight into the member's namespace as eth0.
  const std::string bridge_end = "m" + std::to_string(host);
  auto paired = in_namespace(hub_, "joining the private network", [&](nl_sock* s) {
    rtnl_link* veth = rtnl_link_veth_alloc();
    if (!veth) return -NLE_NOMEM;
    rtnl_link_set_name(veth, bridge_end.c_str());
    rtnl_link* peer = rtnl_link_veth_get_peer(veth);
    rtnl_link_set_name(peer, "eth0");
    rtnl_link_set_ns_fd(peer, member->netns_);
    rtnl_link_put(peer);
    int err = rtnl_link_add(s, veth, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(veth);
    if (err < 0) return err;
    const int bridge = index_of(s, kBridge);
    return bridge < 0 ? bridge : link_up(s, bridge_end.c_str(), bridge);
  });
  if (!paired) return tl::unexpected(paired.error());
  auto addressed =
      in_namespace(member->netns_, "addressing a private network's member", [&](nl_sock* s) {
        const int eth0 = index_of(s, "eth0");
        if (eth0 < 0) return eth0;
        nl_addr* local = nullptr;
        int err = nl_addr_parse((member->address_ + "/24").c_str(), AF_INET, &local);
        if (err < 0) return err;
        rtnl_addr* assigned = rtnl_addr_alloc();
        rtnl_addr_set_ifindex(assigned, eth0);
        rtnl_addr_set_local(assigned, local);
        err = rtnl_addr_add(s, assigned, 0);
        rtnl_addr_put(assigned);
        nl_addr_put(local);
        return err < 0 ? err : link_up(s, "eth0");
      });
  if (!addressed) return tl::unexpected(addressed.error());
  return member;
}

}  // namespace warren::sandbox
