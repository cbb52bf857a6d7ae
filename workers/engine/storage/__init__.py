"""Host storage helpers (Django-free): size-limited directories for container writes and volumes."""
