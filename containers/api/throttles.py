"""Rate limits: per user for writes and reads, per address for signed-out clients.

Rates come from settings.BERTH_API_THROTTLE_RATES (env BERTH_API_THROTTLE_*), read at each request so
that tests and operators can change them. Counters live in Django's cache (per process by default).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import throttling

SAFE = ("GET", "HEAD", "OPTIONS")


class _Rated:
    scope = ""

    def get_rate(self):
        return settings.BERTH_API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if not self.applies(request):
            return True
        return super().allow_request(request, view)

    def applies(self, request) -> bool:
        return True


class AnonThrottle(_Rated, throttling.AnonRateThrottle):
    scope = "anon"


class UserWriteThrottle(_Rated, throttling.UserRateThrottle):
    scope = "write"

    def applies(self, request) -> bool:
        return request.user.is_authenticated and request.method not in SAFE


class UserReadThrottle(_Rated, throttling.UserRateThrottle):
    scope = "read"

    def applies(self, request) -> bool:
        return request.user.is_authenticated and request.method in SAFE
