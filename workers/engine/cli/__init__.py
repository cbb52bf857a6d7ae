"""The engine's host command line, in the manner of podman: one module per group of verbs."""
