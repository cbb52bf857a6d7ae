"""Docker-style generated names ("adjective_noun"), with a harbour theme of our own."""

from __future__ import annotations

import secrets

ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "eager", "fair", "gentle", "glad",
    "golden", "hardy", "humble", "jolly", "keen", "kind", "lively", "lucid", "merry", "mighty", "nimble",
    "noble", "patient", "plucky", "proud", "quiet", "rapid", "ready", "salty", "serene", "sharp", "silent",
    "steady", "stout", "sunny", "swift", "tidy", "trusty", "vivid", "wary", "witty", "zesty",
)
NOUNS = (
    "anchor", "bollard", "bosun", "breakwater", "buoy", "cabin", "capstan", "cargo", "compass", "crane",
    "dinghy", "dock", "ferry", "galley", "gangway", "harbour", "hawser", "helm", "hull", "jetty", "keel",
    "lantern", "lighthouse", "mast", "mooring", "navigator", "oar", "pier", "pilot", "quay", "rudder",
    "sail", "schooner", "sextant", "skipper", "slipway", "stevedore", "tender", "tide", "tugboat", "wharf",
)


def generate_name(taken: set[str]) -> str:
    """A free name: adjective_noun, with a number appended if all tries collide."""
    for _ in range(20):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}"
        if name not in taken:
            return name
    n = 2
    while f"{name}{n}" in taken:
        n += 1
    return f"{name}{n}"
