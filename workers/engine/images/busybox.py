"""A busybox root filesystem built from Debian's busybox-static: no downloads, a few MB, seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = "/bin/busybox"

_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "root", "var/tmp", "run")


def make_busybox_rootfs(dest: str | os.PathLike[str], busybox: str = BUSYBOX) -> Path:
    """Lay a minimal busybox rootfs at `dest` (created if missing) and return its path.

    Every applet becomes a symlink to /bin/busybox, as `busybox --install -s` would do,
    without running anything inside the tree.
    """
    root = Path(dest)
    if not Path(busybox).exists():
        raise FileNotFoundError(f"{busybox} not found: install Debian's busybox-static")
    for d in _DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "var/tmp", 0o1777)
    os.chmod(root / "root", 0o700)
    shutil.copy2(busybox, root / "bin/busybox")
    applets = subprocess.run(
        [busybox, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = root / applet
        if link.name == "busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc/hostname").write_text("busybox\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    return root
