"""ASGI entry point (uvicorn webapp.asgi:application; see berth_run.asgi_server_command): HTTP through Django, WebSockets through Channels."""

import os

import django

from webapp import database

# A server's PostgreSQL connections come from a pool (webapp/database.py); no effect where settings were read.
database.POOLED = True
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django.setup(set_prefix=False)  # what get_asgi_application does, with Berth's handler (webapp/asgi_handler.py)

from webapp.asgi_handler import BerthASGIHandler  # noqa: E402  (needs Django set up first)

django_asgi_app = BerthASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from containers.routing import websocket_urlpatterns  # noqa: E402
from containers.transfer import sweep_quietly  # noqa: E402

sweep_quietly()  # what a killed predecessor left in the staging dir (containers/transfer_files.py)

application = ProtocolTypeRouter(
    {
        # The dashboard's own css/js are served by the app itself, DEBUG or not: no separate web server needed.
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
