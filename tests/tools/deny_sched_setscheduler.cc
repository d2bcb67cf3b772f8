// deny_sched_setscheduler: runs a program under a seccomp filter that fails sched_setscheduler
// (and sched_setattr) with EPERM, as a container profile or systemd's
// SystemCallFilter=~@resources does, so tests can see what mqtls does when the kernel refuses
// its scheduling policy. Everything else is allowed.
//
//   deny_sched_setscheduler PROGRAM [ARG...]
//
// Exit status: the program's (it replaces this process); 127 if the filter cannot be installed
// or the program cannot be started.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: deny_sched_setscheduler PROGRAM [ARG...]\n");
    return 127;
  }
  sock_filter filter[] = {
      // Another architecture's system call numbers mean other calls: let them through.
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_sched_setscheduler, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_sched_setattr, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::fprintf(stderr, "deny_sched_setscheduler: cannot install the filter: %s\n",
                 std::strerror(errno));
    return 127;
  }
  execvp(argv[1], argv + 1);
  std::fprintf(stderr, "deny_sched_setscheduler: cannot start %s: %s\n", argv[1],
               std::strerror(errno));
  return 127;
}
