"""A relay streamed through the web server (containers/transfer_relay.py, a move's pack): the reader gets each part
as it arrives and the end once the last one is in; parts only append where the file ends; a reader whose transfer
is dropped is cut (no wait for a stall); the sweep keeps a growing relay's file."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from containers import transfer
from containers.models import Host, Job
from containers.transfer_model import Transfer

pytestmark = pytest.mark.django_db


def put(c: Client, row: Transfer, data: bytes, offset: int, end: bool):
    return c.generic("PUT", f"/internal/transfers/{row.pk}/?offset={offset}&end={int(end)}", data,
                     content_type="application/octet-stream", HTTP_AUTHORIZATION=f"Bearer {row.token}")


def test_a_reader_gets_each_part_as_it_arrives_and_the_end_after_the_last(relay):
    # mutant: transfer_relay.Part: `if st.st_size != offset or ...` -> `if not st.st_mode & stat.S_IWUSR`
    # (a part lands wherever its sender says)
    c = Client()
    assert put(c, relay, b"first-", 0, False).status_code == 201
    got = c.get(f"/internal/transfers/{relay.pk}/", HTTP_AUTHORIZATION=f"Bearer {relay.token}")
    assert got.status_code == 200 and not got.has_header("Content-Length")
    stream = iter(got.streaming_content)
    assert next(stream) == b"first-"  # before the sender is done
    assert put(c, relay, b"x", 3, False).status_code == 409  # not where the file ends
    assert put(c, relay, b"second", 6, True).status_code == 201
    assert b"".join(stream) == b"second"
    relay.refresh_from_db()
    assert (relay.kind, relay.size) == (Transfer.Kind.UPLOAD, 12)
    assert put(c, relay, b"more", 12, True).status_code == 405  # ended: an upload now, no more parts
    whole = c.get(f"/internal/transfers/{relay.pk}/", HTTP_AUTHORIZATION=f"Bearer {relay.token}")
    assert b"".join(whole.streaming_content) == b"first-second" and whole["Content-Length"] == "12"


def test_a_dropped_relay_cuts_its_reader_and_a_growing_one_survives_the_sweep(relay, monkeypatch):
    # mutant: containers/transfer.py _owned: `kind__in=(UPLOAD, RELAY)` -> `kind__in=(UPLOAD,)` (the sweep deletes
    # the file of a relay still arriving)
    from containers import transfer_relay

    monkeypatch.setattr(transfer_relay, "STALL", 3600.0)  # only the dropped row may end the read below
    monkeypatch.setattr(transfer_relay, "ROW_EVERY", 0.0)
    c = Client()
    assert put(c, relay, b"part-one", 0, False).status_code == 201
    transfer.sweep()
    assert transfer.staged_upload(relay).read_bytes() == b"part-one"
    got = c.get(f"/internal/transfers/{relay.pk}/", HTTP_AUTHORIZATION=f"Bearer {relay.token}")
    stream = iter(got.streaming_content)
    assert next(stream) == b"part-one"
    assert c.delete(f"/internal/transfers/{relay.pk}/", HTTP_AUTHORIZATION=f"Bearer {relay.token}").status_code == 204
    assert list(stream) == []  # cut: the reader sees a pack without its end
    assert not transfer.staged_upload(relay).exists()
    assert put(c, relay, b"late", 8, True).status_code == 404  # the sender is refused at its next part


@pytest.fixture(params=["wsgi", "asgi"])
def over_http(request, settings, tmp_path, transactional_db, monkeypatch):
    """A receive job whose pack a worker's RelayWriter sends over HTTP, read back as the receiving worker does:
    through Django's view (the live server, WSGI) and through the web server `make run` starts (uvicorn, where
    containers/transfer_asgi.py takes the relay before Django). A reader that misses the end waits for the
    test's timeout, not for a stall."""
    from containers import transfer_relay

    monkeypatch.setattr(transfer_relay, "STALL", 3600.0)
    settings.BERTH_TRANSFER_DIR = tmp_path / "transfers"
    if request.param == "wsgi":
        settings.BERTH_CONTROL_URL = request.getfixturevalue("live_server").url
    else:
        from tests.conftest import stop_process
        from tests.support import start_asgi_server

        proc, port = start_asgi_server(request.getfixturevalue("redis_url"), tmp_path / "web", tmp_path / "web.log")
        request.addfinalizer(lambda: stop_process(proc))
        settings.BERTH_CONTROL_URL = f"http://127.0.0.1:{port}"
    host = Host.objects.create(name="far-away")
    return Job.objects.create(kind="container.receive", host=host, state=Job.State.RUNNING)


@pytest.mark.e2e  # a web server for other processes: the part `make test` runs on PostgreSQL too
@pytest.mark.timeout(60)
def test_a_worker_reads_the_pack_while_another_still_sends_it(over_http):
    # mutant: transfer_relay.GrowingFile.read: `if (not st.st_mode & stat.S_IWUSR or st.st_nlink == 0) and …` ->
    # `if st.st_nlink == 0 and …` (the reader never learns that the relay is whole: the test times out)
    import threading

    from workers import transfer as worker_transfer

    data = bytes(range(256)) * 12_000  # about 3 MiB: a dozen parts of 256 KiB
    writer = worker_transfer.RelayWriter(over_http, part=256 * 1024)
    sent = {}

    def send() -> None:
        for i in range(0, len(data), 100_000):
            writer.write(data[i:i + 100_000])
        sent["bytes"] = writer.close()

    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    with worker_transfer.streamed_upload(over_http) as f:
        while chunk := f.read(1 << 20):
            got += chunk
    sender.join()
    assert bytes(got) == data and sent["bytes"] == len(data)
    row = Transfer.objects.get(job=over_http)
    assert (row.kind, row.size) == (Transfer.Kind.UPLOAD, len(data))
    worker_transfer.consume_upload(over_http)
    assert not Transfer.objects.filter(job=over_http).exists()


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_a_sender_that_gives_up_cuts_the_reader_and_is_refused_after(over_http):
    # mutant: the same line -> `if not st.st_mode & stat.S_IWUSR and …` (an unlinked relay is read forever)
    from workers import transfer as worker_transfer

    writer = worker_transfer.RelayWriter(over_http, part=256 * 1024)
    writer.write(b"\1" * (1 << 20))
    got = bytearray()
    with worker_transfer.streamed_upload(over_http) as f:
        while len(got) < 768 * 1024:
            got += f.read(1 << 20)
        worker_transfer.consume_upload(over_http)  # the source gives the move up
        while chunk := f.read(1 << 20):
            got += chunk
    assert len(got) < 1 << 20 or bytes(got) == b"\1" * (1 << 20)
    with pytest.raises(Exception, match="control plane refused"):
        writer.write(b"\2" * (1 << 20))
        writer.close()
    writer.abort()


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_on_the_asgi_server_a_part_reaches_the_reader_while_it_still_arrives(
        redis_url, settings, tmp_path, transactional_db):
    # mutant: containers/transfer_asgi.py RelayRouter: `if match and scope["method"] in ("GET", "PUT"):` ->
    # `if False:` (Django reads a part's whole body before its view runs: the reader gets nothing yet)
    import http.client
    import socket

    from tests.conftest import stop_process
    from tests.support import start_asgi_server

    settings.BERTH_TRANSFER_DIR = tmp_path / "transfers"
    host = Host.objects.create(name="far-away")
    job = Job.objects.create(kind="container.receive", host=host, state=Job.State.RUNNING)
    row = Transfer.objects.create(id=uuid.uuid4(), kind=Transfer.Kind.RELAY, host=host, job=job,
                                  expires=timezone.now() + timedelta(hours=1))
    proc, port = start_asgi_server(redis_url, tmp_path / "web", tmp_path / "web.log")
    try:
        sender = socket.create_connection(("127.0.0.1", port), timeout=30)
        sender.sendall(f"PUT /internal/transfers/{row.pk}/?offset=0&end=1 HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {row.token}\r\nContent-Length: {2 << 20}\r\n\r\n".encode()
                       + b"a" * (1 << 20))  # half of the part, and the sender pauses
        reader = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        reader.request("GET", f"/internal/transfers/{row.pk}/", headers={"Authorization": f"Bearer {row.token}"})
        resp = reader.getresponse()
        assert resp.status == 200
        got = bytearray()
        while len(got) < 1 << 20:
            got += resp.read1(1 << 20)
        assert bytes(got) == b"a" * (1 << 20)  # before the part is whole
        sender.sendall(b"b" * (1 << 20))
        assert b"201" in sender.recv(4096).split(b"\r\n")[0]
        assert resp.read() == b"b" * (1 << 20)  # and the end once the last part is in
        row.refresh_from_db()
        assert (row.kind, row.size) == (Transfer.Kind.UPLOAD, 2 << 20)
        wrong = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        wrong.request("GET", f"/internal/transfers/{row.pk}/", headers={"Authorization": "Bearer nope"})
        assert wrong.getresponse().status == 404  # a wrong secret: Django's answer, as for any transfer
        sender.close()
        reader.close()
        wrong.close()
    finally:
        stop_process(proc)


def test_a_writer_sends_in_parts_what_was_written_without_joining_it(relay, monkeypatch):
    # mutant: workers/engine/containers/pack_tar.py Parts.add: `take = view if ... else view[:self.size - self.held]`
    # -> `take = view` (a write that straddles two parts goes whole into the first: a part longer than it says)
    import os

    from workers import transfer as worker_transfer

    sent = []

    def put(row, body, length, refused, query="", conn=None):
        assert isinstance(body, list) and sum(len(c) for c in body) == length  # chunk by chunk, as declared
        sent.append((query, b"".join(bytes(c) for c in body)))

    monkeypatch.setattr(worker_transfer, "_put", put)
    monkeypatch.setattr(worker_transfer, "_connection", lambda: (type("C", (), {"close": lambda self: None})(), ""))
    a, b = os.urandom(1500), os.urandom(900)
    reused = bytearray(os.urandom(700))
    expected = a + b[100:500] + bytes(reused)
    writer = worker_transfer.RelayWriter(relay.job, part=1000)
    writer.write(a)
    writer.write(memoryview(b)[100:500])
    writer.write(reused)
    reused[:] = bytes(700)  # the writer's buffer reused: what was written before goes out as it was
    assert writer.close() == len(expected)
    assert [len(p) for _, p in sent] == [1000, 1000, 600] and b"".join(p for _, p in sent) == expected
    assert [q for q, _ in sent] == ["?offset=0&end=0", "?offset=1000&end=0", "?offset=2000&end=1"]


def test_a_writer_s_first_parts_grow_to_its_part_size(relay, monkeypatch):
    # The receiver's first bytes leave once FIRST_PART is written, not a whole 8 MiB part.
    # mutant: RelayWriter.write: `self.cut.size = min(self.cut.size * 2, self.most)` removed (every part FIRST_PART
    # long)
    from workers import transfer as worker_transfer

    sizes = []
    monkeypatch.setattr(worker_transfer, "_put", lambda row, body, length, *a, **k: sizes.append(length))
    monkeypatch.setattr(worker_transfer, "_connection", lambda: (type("C", (), {"close": lambda self: None})(), ""))
    monkeypatch.setattr(worker_transfer, "FIRST_PART", 100)
    writer = worker_transfer.RelayWriter(relay.job, part=1000)
    writer.write(bytes(3000))
    assert writer.close() == 3000
    assert sizes == [100, 200, 400, 800, 1000, 500]
