"""Berth's image store: an OCI image layout per host, and the ways images move in and out."""
