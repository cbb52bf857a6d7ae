"""The container page's network facts: its addresses per network (by the user's names) and its published
ports as links. Read from Container.network, the engine's view the worker stored (never the host's disk)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag
def container_networks(container) -> list[dict[str, Any]]:
    net = container.network or {}
    out = []
    for engine_name, att in (net.get("networks") or {}).items():
        name = engine_name.partition(".")[2] if container.namespace and "." in engine_name else engine_name
        aliases = [a for a in att.get("aliases") or [] if a != container.engine_name and a != container.engine_id[:12]]
        out.append({"name": name, "ip": att.get("ip"), "prefix_len": att.get("prefix_len"), "mac": att.get("mac"),
                    "gateway": att.get("gateway"), "aliases": aliases})
    return out


@register.simple_tag(takes_context=True)
def port_links(context, container) -> list[dict[str, str]]:
    """'80/tcp → 127.0.0.1:32768' with an http link for TCP ports (the browser's own host name for a port
    published on every address)."""
    request = context.get("request")
    links = []
    for p in (container.network or {}).get("ports") or []:
        host = p.get("host_ip") or "127.0.0.1"
        if host == "0.0.0.0" and request is not None:
            host = request.get_host().rsplit(":", 1)[0]
        text = f"{p.get('container_port')}/{p.get('protocol')} → {p.get('host_ip')}:{p.get('host_port')}"
        url = f"http://{host}:{p.get('host_port')}/" if p.get("protocol") == "tcp" else ""
        links.append({"text": text, "url": url})
    return links
