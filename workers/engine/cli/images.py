"""Image verbs: `image ls|import|load|save|rm|inspect|tag|gc|base`, `images`, `export`, `commit`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..images.base import ensure_base_images
from ..images.debian import CACHE_ENV, default_cache_dir
from ..images.errors import ImageError
from ..images.store import ImageStore
from ..images.tarsafe import TarPolicy


def _store(args: argparse.Namespace) -> ImageStore:
    return ImageStore(args.root, policy=TarPolicy(setuid=getattr(args, "setuid", None) or "refuse"))


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def cmd_ls(args) -> int:
    images = _store(args).list()
    if args.json:
        _print_json([i.to_dict() for i in images])
        return 0
    print(f"{'REPOSITORY':<30} {'TAG':<16} {'IMAGE ID':<14} {'CREATED':<22} SIZE")
    for image in images:
        created = (image.config.get("created") or "")[:19].replace("T", " ")
        for tag in image.tags or ["<none>:<none>"]:
            name, _, t = tag.rpartition(":")
            if not args.quiet:
                print(f"{name:<30} {t:<16} {image.id[7:19]:<14} {created:<22} {_human(image.size)}")
        if args.quiet:
            print(image.id[7:19])
    return 0


def cmd_images(args) -> int:
    if args.debian:
        ensure_base_images(_store(args), debian=True)
    return cmd_ls(args)


def cmd_import(args) -> int:
    image = _store(args).import_tarball(args.file, args.reference, message=args.message or "",
                                        changes=args.change or [])
    _print_json({"Id": image.id, "RepoTags": image.tags}) if args.json else print(image.id)
    return 0


def cmd_load(args) -> int:
    images = _store(args).load(args.input or "-")
    if args.json:
        _print_json([{"Id": i.id, "RepoTags": i.tags} for i in images])
    else:
        for image in images:
            print("Loaded image(s): " + (", ".join(image.tags) or image.id))
    return 0


def cmd_save(args) -> int:
    if not args.output and sys.stdout.isatty():
        raise ImageError("refusing to write an archive to a terminal: use -o FILE")
    _store(args).save(args.images, args.output or "-", format=args.format)
    return 0


def cmd_rm(args) -> int:
    store = _store(args)
    rc = 0
    for ref in args.images:
        try:
            result = store.remove(ref, force=args.force)
        except ImageError as e:
            print(f"Error: {e}", file=sys.stderr)
            rc = 125
            continue
        for tag in result["untagged"]:
            print(f"Untagged: {tag}")
        if result["deleted"]:
            print(f"Deleted: {result['deleted']}")
    return rc


def cmd_inspect(args) -> int:
    store = _store(args)
    _print_json([store.inspect(ref) for ref in args.images])
    return 0


def cmd_tag(args) -> int:
    store = _store(args)
    for target in args.targets:
        store.tag(args.source, target)
    return 0


def cmd_gc(args) -> int:
    result = _store(args).gc()
    _print_json(result) if args.json else print(
        f"removed {result['removed_blobs']} blobs, {result['removed_layers']} layer dirs, "
        f"freed {_human(result['freed_bytes'])}")
    return 0


def cmd_base(args) -> int:
    made = ensure_base_images(_store(args), debian=args.debian, include=args.include,
                              cache_dir=args.cache_dir or default_cache_dir())
    _print_json(made) if args.json else print("\n".join(made) or "base images already present")
    return 0


def _with_disk(cdir: Path) -> Path:
    """A disk-limited container's upper dir is on its disk, off the host's mount table while it runs."""
    from ..storage import quota

    try:
        quota.ensure_mounted(cdir / "rw")
    except quota.QuotaError as e:
        raise ImageError(str(e)) from None
    return cdir


def _container_dir(root: str, name: str) -> Path:
    """A container by id, id prefix or name (container.json "name")."""
    base = Path(root) / "containers"
    if (base / name / "image.json").exists():
        return _with_disk(base / name)
    matches = []
    for d in base.iterdir() if base.is_dir() else []:
        try:
            cname = json.loads((d / "container.json").read_text()).get("name")
        except (OSError, ValueError):
            cname = None
        if cname == name or d.name.startswith(name):
            matches.append(d)
    if len(matches) == 1:
        return _with_disk(matches[0])
    raise ImageError(f"{name}: no such container" if not matches else f"{name}: ambiguous container name")


def cmd_export(args) -> int:
    if not args.output and sys.stdout.isatty():
        raise ImageError("refusing to write a tar archive to a terminal: use -o FILE")
    _store(args).export_container(_container_dir(args.root, args.container), args.output or "-")
    return 0


def cmd_commit(args) -> int:
    image_id = _store(args).commit(_container_dir(args.root, args.container), args.reference,
                                   author=args.author or "", message=args.message or "",
                                   changes=args.change or [])
    _print_json({"Id": image_id}) if args.json else print(image_id)
    return 0


def _policy_flag(p) -> None:
    p.add_argument("--setuid", choices=("refuse", "strip", "keep"), default="refuse",
                   help="what to do with setuid/setgid files in the input (default: refuse)")


def register(sub) -> None:
    image = sub.add_parser("image", help="manage images")
    isub = image.add_subparsers(dest="image_command", metavar="VERB", required=True)

    p = isub.add_parser("ls", aliases=["list"], help="list images")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_ls)
    p = sub.add_parser("images", help="list images (--debian: build the Debian base image first)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debian", action="store_true")
    p.set_defaults(func=cmd_images)

    p = isub.add_parser("import", help="import a rootfs tarball (plain, gzip, zstd; - for stdin)")
    p.add_argument("file")
    p.add_argument("reference", nargs="?")
    p.add_argument("-m", "--message")
    p.add_argument("-c", "--change", action="append")
    _policy_flag(p)
    p.set_defaults(func=cmd_import)

    p = isub.add_parser("load", help="load a docker-archive or oci-archive")
    p.add_argument("-i", "--input")
    _policy_flag(p)
    p.set_defaults(func=cmd_load)

    p = isub.add_parser("save", help="save images to an archive")
    p.add_argument("-o", "--output")
    p.add_argument("--format", choices=("oci-archive", "docker-archive"), default="docker-archive")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_save)

    p = isub.add_parser("rm", help="remove images")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = isub.add_parser("inspect", help="show image details as JSON")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = isub.add_parser("tag", help="add names to an image")
    p.add_argument("source")
    p.add_argument("targets", nargs="+")
    p.set_defaults(func=cmd_tag)

    p = isub.add_parser("gc", help="remove unreferenced blobs and layer dirs")
    p.set_defaults(func=cmd_gc)

    p = isub.add_parser("base", help="create the base images made on this host")
    p.add_argument("--debian", action="store_true", help="also debian:bookworm-slim via debootstrap (minutes)")
    p.add_argument("--include", metavar="PKG,PKG", help="extra Debian packages: makes debian:bookworm_PKG_PKG "
                                                         "instead of debian:bookworm-slim (implies --debian)")
    p.add_argument("--cache-dir", metavar="DIR", help="keep the Debian rootfs here, keyed by suite, packages, "
                                                       f"mirror and builder version (default ${CACHE_ENV})")
    p.set_defaults(func=cmd_base)

    p = sub.add_parser("export", help="export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output")
    p.add_argument("container")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("commit", help="make an image from a container's changes")
    p.add_argument("-a", "--author")
    p.add_argument("-m", "--message")
    p.add_argument("-c", "--change", action="append")
    p.add_argument("container")
    p.add_argument("reference", nargs="?")
    p.set_defaults(func=cmd_commit)
