"""ASGI entry point (uvicorn webapp.asgi:application; see berth_run.asgi_server_command): HTTP through Django, WebSockets through Channels."""

import os

from webapp import database

# A server's PostgreSQL connections come from a pool (webapp/database.py); no effect where settings were read.
database.POOLED = True
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from containers.routing import websocket_urlpatterns  # noqa: E402
from containers.transfer import sweep_quietly  # noqa: E402
from containers.transfer_asgi import RelayRouter  # noqa: E402

sweep_quietly()  # what a killed predecessor left in the staging dir (containers/transfer_files.py)

application = ProtocolTypeRouter(
    {
        # The dashboard's own css/js are served by the app itself, DEBUG or not: no separate web server needed.
        # A move's relay streams on the loop itself, before Django (containers/transfer_asgi.py).
        "http": RelayRouter(ASGIStaticFilesHandler(django_asgi_app)),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
