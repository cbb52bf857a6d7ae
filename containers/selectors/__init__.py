"""Reads: what a user may see, filtered and ordered, for the API's lists and the dashboard's pages.

The services (containers/services/) are the one path for changes; the selectors are the one path for
lists. Both build on containers/permissions.py, which decides visibility.

- params.py: query parameters as filters (ids or names, ordering, choices, labels, audit), 400s naming them
- lists.py: the API's list reads, one function per resource
- pages.py: the dashboard pages' reads
"""

from . import lists, pages, params
from .lists import audit_events, containers, hosts, images, jobs, live_tokens, teams, volumes

__all__ = ["audit_events", "containers", "hosts", "images", "jobs", "lists", "live_tokens", "pages", "params",
           "teams", "volumes"]
