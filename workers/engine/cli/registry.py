"""Registry verbs as Docker's: `pull`, `push`, `login`, `logout`; and `build`. Credentials: `--creds`, else the auths of
Docker's config.json (`--authfile`, default $DOCKER_CONFIG/config.json or ~/.docker/config.json)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import threading
from typing import Any

from ..images import registry
from ..images.errors import ImageError
from ..images.registry_auth import Credentials
from .images import _human, _store


class _Progress:
    """Docker-like per-layer lines: one line per change of status, and on a terminal a redrawn byte count."""

    def __init__(self, as_json: bool, quiet: bool) -> None:
        self.as_json, self.quiet, self.tty = as_json, quiet, sys.stderr.isatty()
        self.status: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        with self.lock:
            if self.as_json:
                if event.get("status") not in ("downloading", "uploading", "extracting") or event.get("current") == 0:
                    sys.stderr.write(json.dumps(event) + "\n")
                return
            layer = event.get("id")
            status = event.get("status", "")
            if not layer or event.get("status") == "done":
                return
            short = layer.split(":", 1)[-1][:12]
            if status in ("downloading", "uploading", "extracting"):
                if self.tty:
                    sys.stderr.write(f"\r{short}: {status} {_human(event['current'])}/{_human(event['total'])}\x1b[K")
                if self.status.get(layer) == status:
                    return
            elif self.tty:
                sys.stderr.write("\r\x1b[K")
            self.status[layer] = status
            label = {"exists": "Already exists", "mounted": "Mounted", "complete": "Pull complete",
                     "pushed": "Pushed", "downloading": "Downloading", "uploading": "Pushing",
                     "extracting": "Extracting"}.get(status, status)
            if not self.tty or status not in ("downloading", "uploading", "extracting"):
                sys.stderr.write(f"{short}: {label}\n")
            sys.stderr.flush()


def _client_args(args: argparse.Namespace) -> dict[str, Any]:
    creds = None
    if getattr(args, "creds", None):
        user, sep, password = args.creds.partition(":")
        if not sep:
            password = getpass.getpass(f"Password for {user}: ")
        creds = Credentials(user, password)
    return {"credentials": creds, "auth_file": args.authfile, "use_docker_config": True,
            "insecure": args.insecure, "ca_file": args.ca_file}


def cmd_pull(args) -> int:
    progress = _Progress(args.json, args.quiet)
    result = registry.pull(_store(args), args.reference, platform=args.platform, progress=progress,
                           unpack_progress=progress, **_client_args(args))
    result.wait_unpacked()  # as `docker pull`: done when the layers are unpacked too
    if args.json:
        print(json.dumps({"Id": result.image.id, "Digest": result.digest, "RepoTags": result.image.tags,
                          "Fetched": result.fetched, "Reused": result.reused}))
    elif args.quiet:
        print(result.image.tags[0] if result.image.tags else result.digest)
    else:
        print(f"Digest: {result.digest}")
        print(f"Status: downloaded {len(result.fetched)} layer(s), {len(result.reused)} already here")
        print(registry.parse(args.reference))
    return 0


def cmd_push(args) -> int:
    result = registry.push(_store(args), args.image, args.destination, progress=_Progress(args.json, args.quiet),
                           **_client_args(args))
    if args.json:
        print(json.dumps({"Ref": result.ref, "Digest": result.digest, "Size": result.size, "Sent": result.sent,
                          "Skipped": result.skipped}))
    else:
        print(f"{result.ref.rsplit(':', 1)[-1]}: digest: {result.digest} size: {result.size}")
    return 0


def cmd_login(args) -> int:
    user = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = args.password if args.password is not None else getpass.getpass("Password: ")
    if not user or not password:
        raise ImageError("a username and a password are needed")
    domain = registry.login(args.server or "", Credentials(user, password), auth_file=args.authfile,
                            insecure=args.insecure, ca_file=args.ca_file)
    print(f"Login Succeeded ({domain})")
    return 0


def cmd_logout(args) -> int:
    server = args.server or "docker.io"
    if registry.logout(args.server or "", auth_file=args.authfile):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0


def _transport_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--authfile", help="Docker config.json to read credentials from (default ~/.docker/config.json)")
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP and unverified TLS for this registry")
    p.add_argument("--ca-file", help="CA bundle for this registry (default: the system's, and certs.d)")


def register(sub) -> None:
    p = sub.add_parser("pull", help="pull an image from a registry")
    p.add_argument("reference")
    p.add_argument("--platform", help="os/arch[/variant] to pick from a multi-platform image (default: this host)")
    p.add_argument("--creds", help="USER[:PASSWORD] (default: the auth file's entry for the registry)")
    p.add_argument("-q", "--quiet", action="store_true")
    _transport_flags(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("push", help="push an image to a registry")
    p.add_argument("image")
    p.add_argument("destination", nargs="?", help="registry reference (default: the image's name)")
    p.add_argument("--creds", help="USER[:PASSWORD] (default: the auth file's entry for the registry)")
    p.add_argument("-q", "--quiet", action="store_true")
    _transport_flags(p)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("login", help="check credentials for a registry and save them")
    p.add_argument("server", nargs="?", help="registry host (default: Docker Hub)")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    _transport_flags(p)
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("logout", help="remove saved credentials for a registry")
    p.add_argument("server", nargs="?")
    p.add_argument("--authfile")
    p.set_defaults(func=cmd_logout)


def cmd_build(args) -> int:
    from ..images.build import build

    build_args = {}
    for item in args.build_arg or []:
        name, eq, value = item.partition("=")
        build_args[name] = value if eq else os.environ.get(name, "")
    quiet = args.quiet or args.json

    def log(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    result = build(_store(args), args.context, dockerfile_path=args.file, tags=args.tag or [],
                   build_args=build_args, no_cache=args.no_cache, log=log, target=args.target)
    if args.json:
        print(json.dumps({"Id": result.image.id, "Digest": result.image.digest, "RepoTags": result.image.tags,
                          "Steps": result.steps, "Cached": result.cached, "NewLayers": result.new_layers}))
    elif args.quiet:
        print(result.image.id)
    return 0


def register_build(sub) -> None:
    p = sub.add_parser("build", help="build an image from a Containerfile or Dockerfile")
    p.add_argument("context", help="the build context directory")
    p.add_argument("-t", "--tag", action="append", help="name:tag for the image (repeatable)")
    p.add_argument("-f", "--file", help="the Containerfile (default: Containerfile or Dockerfile in the context)")
    p.add_argument("--build-arg", action="append", metavar="NAME[=VALUE]")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--target", help="build up to this stage")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.set_defaults(func=cmd_build)
