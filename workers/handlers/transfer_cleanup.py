"""At worker start: `<state root>/exports/`, where download files were kept before they travelled to the
control plane (workers/transfer.py), is emptied and removed; nothing writes there any more, and the expiry
pass that used to remove them is gone with it."""

from __future__ import annotations

import logging
import shutil

from workers.handlers import common, on_worker_start

log = logging.getLogger(__name__)


@on_worker_start
def remove_old_exports(host) -> int:
    exports = common.state_root() / "exports"
    if not exports.is_dir() or exports.is_symlink():
        return 0
    count = sum(1 for _ in exports.iterdir())
    shutil.rmtree(exports, ignore_errors=True)
    if count:
        log.info("host %s: removed %d download file(s) left in %s by an older version", host.name, count, exports)
    return count
