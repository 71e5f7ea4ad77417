// warren-spawner: starts sandboxes for a Warren process (see spawn.hpp). It is started by the
// sandbox library with its socket on descriptor 3, and is of no use by hand.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "spawn.hpp"

int main() {
  if (fcntl(3, F_GETFD) < 0) {
    std::fputs("warren-spawner: started by Warren's sandbox library, not by hand\n", stderr);
    return 2;
  }
  return warren::sandbox::detail::spawner_main(3);
}
