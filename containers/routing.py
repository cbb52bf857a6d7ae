from django.urls import path

from . import consumers, consumers_console, consumers_logs

websocket_urlpatterns = [
    path("ws/events/", consumers.EventsConsumer.as_asgi()),
    path("ws/containers/<int:pk>/logs/", consumers_logs.ContainerLogsConsumer.as_asgi()),
    path("ws/containers/<int:pk>/console/", consumers_console.ContainerConsoleConsumer.as_asgi()),
]
