"""Builds from a Containerfile on the real engine: RUN in Berth containers, multi-stage COPY --from, the cache
(a second build makes no layer; a changed file rebuilds from its step only), a failing RUN, skopeo and umoci
reading the result."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.engine.images.base import ensure_base_images
from workers.engine.images.build import BuildError, build
from workers.engine.images.layout import REF_NAME
from workers.engine.images.store import ImageStore

pytestmark = pytest.mark.root

MULTI = """\
ARG BASE=busybox
FROM $BASE AS builder
ARG GREETING=hi
ENV STAGE=one
WORKDIR /work
RUN echo "$GREETING from $STAGE" > out.txt && echo building-now
COPY app.txt sub/ /work/in/
FROM busybox
COPY --from=builder /work /srv
COPY --chown=1000:1000 app.txt /home/app/
USER 1000
WORKDIR /home/app
ENV X=1
LABEL team=a
EXPOSE 8080
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD ["true"]
CMD ["sh", "-c", "cat /srv/out.txt; id -u; pwd"]
"""


@pytest.fixture
def root(tmp_path_factory) -> Iterator[Path]:
    from tests.engine.containers.conftest import teardown_root

    root = tmp_path_factory.mktemp("bd")  # short: the monitor's socket path is length-limited
    ensure_base_images(ImageStore(root))
    try:
        yield root
    finally:
        teardown_root(root)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "app.txt").write_text("hello app\n")
    (ctx / "sub" / "a.conf").write_text("a\n")
    (ctx / "sub" / "debug.log").write_text("secret log\n")
    (ctx / ".dockerignore").write_text("# logs stay out\n**/*.log\n")
    (ctx / "Containerfile").write_text(MULTI)
    return ctx


def _files(store: ImageStore, diff_id: str) -> list[str]:
    d = store.layer_dir(diff_id)
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_multi_stage_build_runs(root: Path, ctx: Path) -> None:
    from tests.engine.containers.helpers import output
    from workers.engine.containers import ContainerManager

    store = ImageStore(root)
    lines: list[str] = []
    result = build(store, ctx, tags=["app:1"], build_args={"GREETING": "hello"}, log=lines.append)
    assert "building-now" in lines  # RUN's output streamed to the log
    image = store.resolve("app:1")
    busybox = store.resolve("busybox:latest")
    assert image.diff_ids[:1] == busybox.diff_ids and len(image.diff_ids) == 3
    assert len(result.new_layers) == 4  # 2 layers of the builder stage + 2 here
    assert _files(store, image.diff_ids[1]) == ["srv", "srv/in", "srv/in/a.conf", "srv/in/app.txt", "srv/out.txt"]
    copied = store.layer_dir(image.diff_ids[2]) / "home/app/app.txt"
    assert (os.stat(copied).st_uid, os.stat(copied).st_gid) == (1000, 1000)
    inner = image.config["config"]
    assert inner["User"] == "1000" and inner["WorkingDir"] == "/home/app" and "X=1" in inner["Env"]
    assert inner["Labels"] == {"team": "a"} and inner["ExposedPorts"] == {"8080/tcp": {}}
    assert inner["StopSignal"] == "SIGINT" and inner["Healthcheck"]["Test"] == ["CMD", "true"]
    assert inner["Healthcheck"]["Interval"] == 5_000_000_000
    assert not any(t.startswith("berth-build-") for i in store.list() for t in i.tags)
    m = ContainerManager(root)
    c = m.create("app:1")
    m.start(c["id"])
    assert m.wait(c["id"], timeout=60)["exit_code"] == 0
    assert output(m, c["id"]) == "hello from one\n1000\n/home/app\n"
    m.remove(c["id"], force=True)


def test_a_second_build_comes_from_the_cache_even_after_gc(root: Path, ctx: Path) -> None:
    store = ImageStore(root)
    first = build(store, ctx, tags=["app:1"])
    assert len(first.new_layers) == 4
    store.gc()
    blobs_before = sorted(p.name for p in store.blobs.iterdir())
    layers_before = sorted(p.name for p in store.layers.iterdir())
    again = build(store, ctx, tags=["app:2"])
    assert again.new_layers == [] and again.cached == 4
    assert store.resolve("app:2").diff_ids == store.resolve("app:1").diff_ids
    assert sorted(p.name for p in store.layers.iterdir()) == layers_before
    assert set(blobs_before) <= {p.name for p in store.blobs.iterdir()}
    fresh = build(store, ctx, tags=["app:3"], no_cache=True)
    assert len(fresh.new_layers) == 4 and fresh.cached == 0


def test_a_changed_file_rebuilds_from_its_step_only(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "c2"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a1\n")
    (ctx / "c.txt").write_text("c1\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.txt /a\nRUN cat /a /a > /b\nCOPY c.txt /c\n")
    store = ImageStore(root)
    assert len(build(store, ctx, tags=["t:1"]).new_layers) == 3
    (ctx / "c.txt").write_text("c2\n")
    late = build(store, ctx, tags=["t:2"])
    assert late.cached == 2 and len(late.new_layers) == 1
    assert (store.layer_dir(store.resolve("t:2").diff_ids[-1]) / "c").read_text() == "c2\n"
    (ctx / "a.txt").write_text("a2\n")
    early = build(store, ctx, tags=["t:3"])
    assert early.cached == 0 and len(early.new_layers) == 3
    assert (store.layer_dir(store.resolve("t:3").diff_ids[2]) / "b").read_text() == "a2\na2\n"


def test_a_failing_run_shows_its_output_and_leaves_no_image(root: Path, tmp_path: Path) -> None:
    from workers.engine.containers import ContainerManager

    ctx = tmp_path / "bad"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM busybox\nRUN echo first-ok > /ok\n"
                                       "RUN echo about-to-fail; echo to-stderr >&2; exit 3\nCMD [\"true\"]\n")
    store = ImageStore(root)
    before = [(i.digest, i.tags) for i in store.list()]
    with pytest.raises(BuildError) as e:
        build(store, ctx, tags=["bad:1"])
    assert "step 3/4" in str(e.value) and "exit code 3" in str(e.value)
    assert "about-to-fail" in e.value.output and "to-stderr" in e.value.output
    assert [(i.digest, i.tags) for i in store.list()] == before
    index = json.loads((store.dir / "index.json").read_text())
    assert not any(d.get("annotations", {}).get(REF_NAME, "").startswith("berth-build-") for d in index["manifests"])
    assert ContainerManager(root).list(all=True) == []


def test_skopeo_and_umoci_read_the_built_image(root: Path, ctx: Path, tmp_path: Path) -> None:
    store = ImageStore(root)
    image = build(store, ctx, tags=["app:1"]).image
    out = subprocess.run(["skopeo", "inspect", "--config", f"oci:{store.dir}:app:1"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rootfs"]["diff_ids"] == image.diff_ids
    # umoci: from a copy (it takes its own lock files in the layout), unpacked as a bundle
    copy = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{store.dir}:app:1", f"oci:{copy}:app"], check=True, timeout=60)
    bundle = tmp_path / "bundle"
    out = subprocess.run(["umoci", "unpack", "--image", f"{copy}:app", str(bundle)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert (bundle / "rootfs/srv/out.txt").read_text() == "hi from one\n"
    assert (bundle / "rootfs/home/app/app.txt").stat().st_uid == 1000


@pytest.mark.parametrize("text, message", [
    ("RUN true\n", "only ARG may come before the first FROM"),
    ("FROM busybox\nFROBNICATE x\n", "unknown instruction FROBNICATE"),
    ("FROM busybox\nCOPY ../etc/passwd /x\n", "outside the build context"),
    ("FROM busybox\nCOPY nothing-here /x\n", "no source file matches"),
    ("FROM busybox\nCOPY --frobnicate=1 a /x\n", "unknown option '--frobnicate'"),
    ("FROM busybox\nADD http://example.com/x /x\n", "not supported"),
    ("FROM no-such-image:9\n", "pull it first"),
])
def test_bad_containerfiles_are_refused_with_the_line(root: Path, tmp_path: Path, text: str, message: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with pytest.raises(BuildError) as e:
        build(ImageStore(root), ctx, dockerfile=text)
    assert message in str(e.value) and e.value.field == "dockerfile"


def test_a_symlink_in_the_context_is_copied_as_a_link_never_followed(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "etc-link").symlink_to("/etc")
    (ctx / "shadow-link").symlink_to("/etc/shadow")
    store = ImageStore(root)
    with pytest.raises(BuildError, match="no source file matches"):
        build(store, ctx, dockerfile="FROM busybox\nCOPY etc-link/shadow /x\n")
    image = build(store, ctx, dockerfile="FROM busybox\nCOPY shadow-link etc-link /got/\n", tags=["l:1"]).image
    top = store.layer_dir(image.diff_ids[-1]) / "got"
    assert os.readlink(top / "shadow-link") == "/etc/shadow" and os.readlink(top / "etc-link") == "/etc"
    assert sorted(p.name for p in top.iterdir()) == ["etc-link", "shadow-link"]


def test_berth_build_command_line(root: Path, ctx: Path) -> None:
    from tests.engine.images.test_cli import berth

    out = berth(root, "build", "-t", "cli:1", "-f", str(ctx / "Containerfile"), "--build-arg", "GREETING=yo",
                str(ctx)).stdout
    assert "STEP 17/17: CMD" in out and "tagged cli:1" in out
    again = json.loads(berth(root, "--json", "build", "-t", "cli:2", "--build-arg", "GREETING=yo", str(ctx)).stdout)
    assert again["NewLayers"] == [] and again["Cached"] == 4 and again["RepoTags"] == ["cli:2"]
    (ctx / "Containerfile").write_text("FROM busybox\nRUN echo visible-output; exit 7\n")
    failed = berth(root, "build", "-t", "cli:3", str(ctx), check=False)
    assert failed.returncode == 125 and "exit code 7" in failed.stderr and "visible-output" in failed.stderr


def _tgz(path: Path, entries: dict[str, bytes]) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))


def test_add_unpacks_a_local_archive_and_copies_other_files(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _tgz(ctx / "bundle.tar.gz", {"app/run.sh": b"echo run\n", "app/data/x.txt": b"x" * 3000})
    (ctx / "notes.txt").write_text("plain\n")
    store = ImageStore(root)
    image = build(store, ctx, dockerfile="FROM busybox\nADD bundle.tar.gz notes.txt /opt/\n", tags=["add:1"]).image
    top = store.layer_dir(image.diff_ids[-1])
    assert (top / "opt/app/run.sh").read_text() == "echo run\n"
    assert (top / "opt/app/data/x.txt").stat().st_size == 3000
    assert (top / "opt/notes.txt").read_text() == "plain\n" and not (top / "opt/bundle.tar.gz").exists()
    # COPY never unpacks
    copied = build(store, ctx, dockerfile="FROM busybox\nCOPY bundle.tar.gz /opt/\n", tags=["add:2"]).image
    assert (store.layer_dir(copied.diff_ids[-1]) / "opt/bundle.tar.gz").is_file()


def test_add_refuses_an_archive_that_climbs_out(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _tgz(ctx / "evil.tgz", {"../../etc/evil": b"pwned\n"})
    store = ImageStore(root)
    before = [(i.digest, i.tags) for i in store.list()]
    with pytest.raises(BuildError, match="climbs out"):
        build(store, ctx, dockerfile="FROM busybox\nADD evil.tgz /opt/\n", tags=["evil:1"])
    assert [(i.digest, i.tags) for i in store.list()] == before
