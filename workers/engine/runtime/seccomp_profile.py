"""Berth's default seccomp profile: a default-deny allowlist in OCI `linux.seccomp` form.

Written for this project from the syscall tables and man pages, group by group: what a
shell, a package manager, Python, a web server or a database needs is allowed; what
reaches outside the container (mounts, modules, kexec, bpf, the kernel keyring, the
clock, ptrace of other processes, new namespaces, reboot, swap, ...) is left out and so
fails with EPERM. Names the kernel of one architecture lacks are harmless: libseccomp
skips a name for an architecture that has no such syscall.
"""

from __future__ import annotations

import errno
import platform

# Namespace flags of clone(2)/unshare(2). A container must not make new namespaces:
# CLONE_NEWUSER especially opens the kernel's user-namespace attack surface.
from .linux import (  # noqa: E402
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,  # unshare/clone3 only: in clone(2) the low byte is the exit signal
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)

CLONE_NS_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)
UNSHARE_NS_FLAGS = CLONE_NS_FLAGS | CLONE_NEWTIME

AF_VSOCK = 40  # host<->guest sockets: nothing a container should talk to
TIOCSTI = 0x5412  # push bytes into a terminal's input queue: a tty-injection vector
PERSONALITY_QUERY = 0xFFFFFFFF
PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
UNAME26 = 0x0020000

ARCH_FAMILIES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}

# --- what ordinary programs need, by purpose ---------------------------------------

_FILE_IO = [
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "_llseek",
    "dup", "dup2", "dup3", "fcntl", "fcntl64", "flock", "pipe", "pipe2",
    "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "arm_sync_file_range",
    "truncate", "truncate64", "ftruncate", "ftruncate64", "fallocate",
    "fadvise64", "fadvise64_64", "arm_fadvise64_64", "readahead",
    "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range",
    # Linux AIO: per-process contexts, used by databases (InnoDB, PostgreSQL 16+ with io_method).
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64",
    "memfd_create",
]

_FILE_META = [
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "newfstatat", "fstatat64", "statx",
    "statfs", "statfs64", "fstatfs", "fstatfs64",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64",
    "getcwd", "chdir", "fchdir", "umask",
    "chmod", "fchmod", "fchmodat", "fchmodat2",
    "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
    "utime", "utimes", "utimensat", "utimensat_time64", "futimesat",
    "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
    "mknod", "mknodat",  # device nodes are still gated by CAP_MKNOD and the devices cgroup
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr",
    "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    "chroot",  # inside the container's own tree (CAP_SYS_CHROOT is in the default set)
    # Landlock only narrows what the caller may do.
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
]

_MEMORY = [
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore",
    "mlock", "mlock2", "munlock", "mlockall", "munlockall", "remap_file_pages",
    "get_mempolicy", "set_mempolicy", "mbind", "membarrier",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "map_shadow_stack",
]

_PROCESS = [
    "execve", "execveat", "exit", "exit_group", "fork", "vfork",
    "wait4", "waitid", "waitpid",
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "pidfd_open", "pidfd_send_signal",
    "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
    "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32",
    "setresuid", "setresuid32", "setresgid", "setresgid32",
    "getresuid", "getresuid32", "getresgid", "getresgid32",
    "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
    "getgroups", "getgroups32", "setgroups", "setgroups32",
    "capget", "capset", "prctl", "seccomp",  # seccomp(2) can only add restrictions
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
    "futex", "futex_time64", "futex_waitv",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr", "sched_setattr",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set",
    "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "times",
    "uname", "sysinfo", "getcpu", "getrandom", "restart_syscall",
    # x86 thread-local storage and arm's private calls glibc/musl use at start-up
    "arch_prctl", "set_thread_area", "get_thread_area", "set_tls", "cacheflush", "breakpoint",
]

_TIME = [
    "pause", "alarm", "nanosleep", "clock_nanosleep", "clock_nanosleep_time64",
    "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64", "gettimeofday", "time",
    "getitimer", "setitimer",
    "timer_create", "timer_settime", "timer_settime64", "timer_gettime", "timer_gettime64",
    "timer_getoverrun", "timer_delete",
    "timerfd_create", "timerfd_settime", "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64",
]

_SIGNALS = [
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "sigaction", "sigprocmask", "sigreturn", "signal", "sigaltstack", "sigpending", "sigsuspend",
    "signalfd", "signalfd4",
]

_EVENTS = [
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
]

_NETWORK = [
    "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
    "getsockopt", "setsockopt", "sendto", "recvfrom", "send", "recv", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "recvmmsg_time64", "shutdown",
    "socketcall",  # 32-bit x86 multiplexer: its arguments live in memory and cannot be filtered
]

_IPC = [
    # SysV IPC is namespaced by the container's ipc namespace; PostgreSQL needs shm and semaphores.
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semtimedop_time64", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl", "ipc",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
]

ALLOWED_SYSCALLS: list[str] = sorted(
    set(_FILE_IO + _FILE_META + _MEMORY + _PROCESS + _TIME + _SIGNALS + _EVENTS + _NETWORK + _IPC)
)

# Never allowed (documentation and a test check: none of these may appear in the allowlist).
# Each fails with the default EPERM, except where ENOSYS below lets callers fall back.
REFUSED_SYSCALLS: list[str] = [
    "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    "setns",
    "kexec_load", "kexec_file_load", "reboot",
    "init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms",
    "bpf", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "process_madvise", "process_mrelease", "move_pages", "migrate_pages",
    "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "settimeofday", "stime",
    "adjtimex",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "_sysctl", "uselib", "nfsservctl",
    "open_by_handle_at", "name_to_handle_at", "fanotify_init", "fanotify_mark", "lookup_dcookie",
    "iopl", "ioperm", "vm86", "vm86old", "modify_ldt",
    "sethostname", "setdomainname", "vhangup",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
]

# Refused with ENOSYS instead of EPERM: callers treat "not implemented" as "use the old way".
# glibc retries clone3 as clone (whose flags we can filter; clone3's live in memory); io_uring
# users fall back to epoll/threads.
ENOSYS_SYSCALLS: list[str] = ["clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"]


def _arg(index: int, value: int, op: str, value_two: int = 0) -> dict:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def _conditional_rules() -> list[dict]:
    """Syscalls allowed only with harmless arguments."""
    allow = "SCMP_ACT_ALLOW"
    rules = [
        # clone(flags, ...): threads and forks yes, new namespaces no.
        {"names": ["clone"], "action": allow, "args": [_arg(0, CLONE_NS_FLAGS, "SCMP_CMP_MASKED_EQ", 0)],
         "comment": "clone without namespace flags"},
        # unshare(CLONE_FS|CLONE_FILES|CLONE_SYSVSEM) is ordinary; namespace flags are not.
        {"names": ["unshare"], "action": allow, "args": [_arg(0, UNSHARE_NS_FLAGS, "SCMP_CMP_MASKED_EQ", 0)],
         "comment": "unshare without namespace flags"},
        # Every address family but vsock (host<->VM channel).
        {"names": ["socket"], "action": allow, "args": [_arg(0, AF_VSOCK, "SCMP_CMP_NE")],
         "comment": "socket except AF_VSOCK"},
        # ioctl except TIOCSTI (typing into a terminal another process reads).
        {"names": ["ioctl"], "action": allow, "args": [_arg(1, TIOCSTI, "SCMP_CMP_NE")],
         "comment": "ioctl except TIOCSTI"},
    ]
    # personality(2): the queries and the Linux personalities (setarch i386, uname26); not
    # ADDR_NO_RANDOMIZE and friends, which weaken ASLR for exploits.
    for persona in (PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32, PERSONALITY_QUERY):
        rules.append({"names": ["personality"], "action": allow,
                      "args": [_arg(0, persona, "SCMP_CMP_EQ")], "comment": "harmless personalities"})
    return rules


def architectures(machine: str | None = None) -> list[str]:
    """The seccomp architectures for a host: the native one and its compat ABIs."""
    machine = machine or platform.machine()
    if machine in ("x86_64", "amd64"):
        return list(ARCH_FAMILIES["x86_64"])
    if machine in ("aarch64", "arm64"):
        return list(ARCH_FAMILIES["aarch64"])
    return ARCH_FAMILIES["x86_64"] + ARCH_FAMILIES["aarch64"]


def default_profile(machine: str | None = None) -> dict:
    """Berth's default `linux.seccomp` object (a fresh dict; callers may extend it)."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": architectures(machine),
        "syscalls": [
            {"names": list(ALLOWED_SYSCALLS), "action": "SCMP_ACT_ALLOW"},
            *_conditional_rules(),
            {"names": list(ENOSYS_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        ],
    }
