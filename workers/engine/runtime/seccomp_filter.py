"""Build a seccomp filter from config.json's `linux.seccomp` (OCI format) with pyseccomp.

The filter is built AND compiled to BPF in the `create` caller (errors surface there,
pyseccomp is imported only when a config asks for seccomp, and libseccomp's compilation,
tens of ms for a large profile, stays out of the path between `start` and exec); the
container init only installs the BPF program, just before exec.
"""

from __future__ import annotations

import errno as _errno

_ARCHES = {
    "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32", "SCMP_ARCH_ARM": "ARM",
    "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS", "SCMP_ARCH_MIPS64": "MIPS64",
    "SCMP_ARCH_MIPS64N32": "MIPS64N32", "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64",
    "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X",
    "SCMP_ARCH_PARISC": "PARISC", "SCMP_ARCH_PARISC64": "PARISC64", "SCMP_ARCH_RISCV64": "RISCV64",
}
_OPS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
        "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}


def _action(sc, name: str, errno_ret: int | None) -> int:
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return sc.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return sc.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return sc.TRAP
    if name == "SCMP_ACT_ERRNO":
        return sc.ERRNO(_errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return sc.TRACE(_errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_ALLOW":
        return sc.ALLOW
    if name == "SCMP_ACT_LOG":
        return sc.LOG
    raise ValueError(f"seccomp: unsupported action {name!r}")


class BpfProgram:
    """A compiled filter; `load()` installs it with prctl(PR_SET_SECCOMP) (the caller
    has set no_new_privs or still holds CAP_SYS_ADMIN, as the kernel requires)."""

    def __init__(self, code: bytes):
        import ctypes

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        self.code = code
        self._buf = ctypes.create_string_buffer(code, len(code))
        self._prog = SockFprog(len(code) // 8, ctypes.addressof(self._buf))
        self._addr = ctypes.addressof(self._prog)

    def load(self) -> None:
        from . import linux as L

        L.prctl(22, 2, self._addr)  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


def compile_bpf(spec: dict, no_new_privs: bool) -> BpfProgram:
    """build() then libseccomp's BPF export, read back through a memfd."""
    import os

    f = build(spec, no_new_privs)
    fd = os.memfd_create("berth-seccomp", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as w:
            f.export_bpf(w)
        size = os.lseek(fd, 0, os.SEEK_END)
        return BpfProgram(os.pread(fd, size, 0))
    finally:
        os.close(fd)


def compile_bpf_cached(spec: dict, no_new_privs: bool, cache_dir: str) -> BpfProgram:
    """compile_bpf, with the program kept in `cache_dir` (a root-only dir of the runtime's state)
    under a hash of the profile: building a large profile with libseccomp costs a few hundred ms
    per container start, and every container of an engine shares the same default profile."""
    import hashlib
    import json
    import os

    key_src = json.dumps([spec, bool(no_new_privs), os.uname().release, os.uname().machine], sort_keys=True)
    path = os.path.join(cache_dir, hashlib.sha256(key_src.encode()).hexdigest() + ".bpf")
    try:
        with open(path, "rb") as f:
            code = f.read()
        if code and len(code) % 8 == 0:
            return BpfProgram(code)
    except OSError:
        pass
    prog = compile_bpf(spec, no_new_privs)
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(prog.code)
        os.rename(tmp, path)
    except OSError:
        pass  # a cache only
    return prog


def build(spec: dict, no_new_privs: bool):
    """Return a pyseccomp.SyscallFilter for the OCI `linux.seccomp` object (not loaded)."""
    try:
        import pyseccomp as sc
    except ImportError:
        import sys

        if not sys.flags.no_site:
            raise
        import site  # the command line runs under -S (runtime.command()): its packages are site's

        site.main()
        import pyseccomp as sc

    default = _action(sc, spec.get("defaultAction", "SCMP_ACT_ALLOW"), spec.get("defaultErrnoRet"))
    f = sc.SyscallFilter(default)
    if not no_new_privs:
        f.set_attr(sc.Attr.CTL_NNP, 0)  # the config did not ask for no_new_privs: keep it off
    for arch in spec.get("architectures") or []:
        a = _ARCHES.get(arch)
        if a is None:
            raise ValueError(f"seccomp: unknown architecture {arch!r}")
        try:
            f.add_arch(getattr(sc.Arch, a))
        except OSError as e:
            if e.errno != _errno.EEXIST:
                raise
    for rule in spec.get("syscalls") or []:
        action = _action(sc, rule.get("action", ""), rule.get("errnoRet"))
        if action == default:
            continue  # libseccomp refuses a rule equal to the default action
        args = []
        for a in rule.get("args") or []:
            op = _OPS.get(a.get("op", ""))
            if op is None:
                raise ValueError(f"seccomp: unknown comparison {a.get('op')!r}")
            args.append(sc.Arg(a["index"], getattr(sc, op), a.get("value", 0), a.get("valueTwo", 0)))
        # two conditions on the same argument cannot share a rule: add one rule per condition
        same_index = len({a._arg for a in args}) != len(args)
        for name in rule.get("names") or []:
            try:
                if same_index:
                    for a in args:
                        f.add_rule(action, name, a)
                else:
                    f.add_rule(action, name, *args)
            except (OSError, RuntimeError, ValueError):
                continue  # a syscall unknown to this kernel/libseccomp is skipped, as runc does
    return f
