"""The one path from "a user asks" to "a job is queued", shared by the API and the dashboard (iface §5).

Each service checks permissions (containers/permissions.py), validates, records an audit event
(containers/audit.py) — refusals too — and submits the job (containers/jobs.py). Refusals raise
ServiceError with a stable code, a readable message, the offending field and an HTTP status; nothing
is changed and no job is made when one is raised.

The services are a package, one module per kind of object (common, containers, images, uploads,
downloads, hosts, teams, volumes); every name the single module had is re-exported here, so
`from containers.services import X` and `services.X` keep working.
"""

from .common import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_CHARS,
    IDEMPOTENCY_KEY_MAX,
    STATUS,
    ServiceError,
    _as_host,
    _as_team,
    _authorize,
    _bool,
    _existing,
    _image_ref,
    _int,
    _refuse,
    _submit,
    scoped_key,
)
from .containers import (
    _ADJECTIVES,
    _NOUNS,
    ACTION_STATES,
    CONTAINER_ACTIONS,
    NAME_RE,
    _action_params,
    _bind_roots,
    _check_mounts,
    _container_params,
    _name_order,
    _resolve_image,
    container_action,
    create_container,
    generate_name,
)
from .downloads import DOWNLOAD_ACTIONS, StreamedFile, download_path, download_response
from .hosts import (
    check_not_cordoned,
    create_join_token,
    drain_host,
    join_tokens,
    probe_host,
    revoke_join_token,
    update_host,
)
from .images import (
    IMAGE_ACTIONS,
    SAVE_FORMATS,
    _check_image_name_free,
    _import_like,
    image_action,
    import_image,
    load_images,
    share_image,
)
from .move import send_container
from .teams import set_team_limits
from .uploads import (
    CHUNK,
    _check_upload,
    _discard_staged,
    _stage_upload,
    looks_like_archive,
    new_upload_path,
    save_upload,
    uploads_dir,
)

__all__ = ["ACTION_STATES", "CHUNK", "CONTAINER_ACTIONS", "DOWNLOAD_ACTIONS", "IDEMPOTENCY_KEY", "IDEMPOTENCY_KEY_CHARS", "IDEMPOTENCY_KEY_MAX", "IMAGE_ACTIONS", "NAME_RE", "SAVE_FORMATS", "STATUS", "ServiceError", "StreamedFile", "_ADJECTIVES", "_NOUNS", "_action_params", "_as_host", "_as_team", "_authorize", "_bind_roots", "_bool", "_check_image_name_free", "_check_mounts", "_check_upload", "_container_params", "_discard_staged", "_existing", "_image_ref", "_import_like", "_int", "_name_order", "_refuse", "_resolve_image", "_stage_upload", "_submit", "container_action", "create_container", "download_path", "download_response", "generate_name", "image_action", "import_image", "load_images", "looks_like_archive", "new_upload_path", "probe_host", "check_not_cordoned", "create_join_token", "drain_host", "join_tokens", "revoke_join_token", "update_host", "save_upload", "scoped_key", "send_container", "set_team_limits", "share_image", "uploads_dir"]
