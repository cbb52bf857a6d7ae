"""cgroups for containers on v1, v2 and hybrid hosts (v1 controllers + a cgroup2 beside them).

A container's cgroup is one directory per mounted hierarchy, all at the same path
(`linux.cgroupsPath`, default /berth/<id>). The list of directories is stored in the
container state so that `delete` removes exactly what `create` made.

- hierarchy.py: what the host mounts (the engine's one cgroup-version detector), our own cgroup, paths
- base.py: `Cgroup`, the interface every caller uses; it picks the v1 or v2 implementation
- v1.py: v1 and hybrid hosts (limits in the v1 controllers, the freezer controller)
- v2.py: pure cgroup2 hosts (controller delegation, cgroup.freeze, the v2 limit files)
"""

from .base import Cgroup
from .devices import DEFAULT_ALLOWED_DEVICES
from .hierarchy import UNIFIED, _own_cgroup, hierarchies, host_mode, resolve_path, warm_up_migration

__all__ = ["DEFAULT_ALLOWED_DEVICES", "UNIFIED", "Cgroup", "_own_cgroup", "hierarchies", "host_mode", "resolve_path",
           "warm_up_migration"]
