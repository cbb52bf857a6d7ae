"""Networks of a host (Django-free): bridge networks through netavark + aardvark-dns, IPAM, published
ports, /etc files. See manager.py for the seam the container manager calls."""

from .errors import NetworkError, NetworkInUse, NoSuchNetwork, PortTaken
from .manager import NetworkManager
from .store import DEFAULT_NETWORK

__all__ = ["NetworkManager", "NetworkError", "NetworkInUse", "NoSuchNetwork", "PortTaken", "DEFAULT_NETWORK"]
