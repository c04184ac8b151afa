#include "trainer/training/one_ahead.h"

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace recsys {

void LowerThisThreadsPriority() {
#ifdef __linux__
  // Linux applies a nice value to the one thread whose id it is given
  // (POSIX would apply it to the process). Failure leaves the priority as
  // it was, which is only slower.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
#endif
}

}  // namespace recsys
