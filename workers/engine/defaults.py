"""What a container process gets when its image and its spec say nothing (the values of runc's and
Docker's defaults): one definition for the OCI spec template, the bundle, image import and execve."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PATH_ENV = f"PATH={DEFAULT_PATH}"
