"""Capability names and the order runc applies them in: bounding, user, capset, ambient."""

from __future__ import annotations

from . import linux

CAPS = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {"CAP_" + n: i for i, n in enumerate(CAPS)}


_LAST_CAP: int | None = None


def last_cap() -> int:
    global _LAST_CAP
    if _LAST_CAP is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _LAST_CAP = int(f.read())
        except OSError:
            _LAST_CAP = len(CAPS) - 1
    return _LAST_CAP


def mask(names: list[str] | None) -> int:
    """Bit mask of capability names; unknown names raise ValueError (runc refuses them too)."""
    m = 0
    top = last_cap()
    for name in names or ():
        n = CAP_NUMBERS.get(name.upper())
        if n is None:
            raise ValueError(f"unknown capability {name!r}")
        if n <= top:  # a capability newer than the kernel is skipped, as runc does
            m |= 1 << n
    return m


def validate(caps: dict | None) -> None:
    for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        mask((caps or {}).get(key))


def drop_bounding(caps: dict | None) -> None:
    """Drop every capability not in the bounding set (needs CAP_SETPCAP, so do it first)."""
    if caps is None:
        return
    keep = mask(caps.get("bounding"))
    for n in range(last_cap() + 1):
        if not keep & (1 << n):
            linux.prctl(linux.PR_CAPBSET_DROP, n)


def apply(caps: dict | None) -> None:
    """capset effective/permitted/inheritable, then raise the ambient ones."""
    if caps is None:
        return
    linux.capset(mask(caps.get("effective")), mask(caps.get("permitted")), mask(caps.get("inheritable")))
    ambient = caps.get("ambient") or []
    if ambient:
        amb = mask(ambient)
        for n in range(last_cap() + 1):
            if amb & (1 << n):
                try:
                    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, n)
                except OSError:
                    pass  # not in permitted+inheritable: the kernel refuses, runc ignores it too
