"""README promises in Debian's chromium against a live Berth (tests/browser/conftest.py: the ASGI server of
`make run`, a real Celery worker, the real runtime and monitor): the live log viewer on the real container
page, kill with a chosen signal, team sharing seen and run by a member (and a member dropped from the team
losing the live logs), commit for a team and shared; and `make run`'s Ctrl-C order and reconcile on the next
start. Containers are made through containers.services, as a signed-up non-superuser, as the dashboard does;
each test's mutant is in tests/README.md."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from containers import services
from containers.models import Container, Image, Job, Team, TeamMembership
from tests.browser.pages import client_of, disk_records, login, make_user, off_loop, running

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

# What the viewer must render: ANSI colours, a line on stderr, a hostile line (text, not HTML), then a tick
# every 0.2 s for as long as it runs (lines keep arriving while the test pauses, searches, downloads).
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
TALKER = ("printf 'plain start\\n\\033[31mred text\\033[0m and plain\\n'; echo 'an error: needle, needle' >&2; "
          f"echo '{HOSTILE}'; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")


def test_live_log_viewer_on_the_container_page(live_berth, browser, watch, problems, wait_job, wait_for):
    row, job = off_loop(services.create_container, live_berth.user, host=live_berth.worker.host, image="busybox:latest",
                                         name="talker", command=["sh", "-c", TALKER])
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    running(wait_for, row)
    page = watch(browser.new_context(viewport={"width": 1200, "height": 900}).new_page())
    login(page, live_berth, live_berth.user)
    page.goto(f"{live_berth.url}/containers/{row.pk}/")
    view = page.locator("[data-role=view]")
    page.wait_for_function("[...document.querySelectorAll('[data-role=view] .ln .tx')]"
                           ".some(e => e.textContent === 'tick 2')", timeout=60_000)
    assert page.locator("[data-role=status]").inner_text() == "live"
    # Log text is text: no element from the hostile line, its characters shown as written.
    assert view.locator("img, script").count() == 0 and page.evaluate("window.__xss") is None
    assert view.locator(".ln .tx", has_text="onerror").inner_text() == HOSTILE
    # ANSI colours rendered, the escape codes gone; stderr styled apart.
    red_line = view.locator(".ln", has_text="red text")
    red = red_line.locator("span[style*='color']")
    assert red.inner_text() == "red text" and "187,0,0" in red.get_attribute("style").replace(" ", "")
    assert red_line.locator(".tx").inner_text() == "red text and plain"
    assert view.locator(".ln.err").count() == 1 and "needle" in view.locator(".ln.err").inner_text()
    # Search: both matches of the stderr line, stepped through.
    page.fill("[data-role=search]", "NEEDLE")
    page.wait_for_function("document.querySelector('[data-role=matches]').textContent === '2 matches'")
    assert view.locator("mark").all_inner_texts() == ["needle", "needle"]
    page.press("[data-role=search]", "Enter")
    page.press("[data-role=search]", "Enter")
    # A line arriving meanwhile keeps the place ("2 of 2"), it does not reset the count.
    assert page.locator("[data-role=matches]").inner_text() == "2 of 2"
    lines = view.locator(".ln").count()
    page.wait_for_function(f"document.querySelectorAll('[data-role=view] .ln').length > {lines}")
    assert page.locator("[data-role=matches]").inner_text() == "2 of 2"
    page.fill("[data-role=search]", "")
    # Timestamps on demand: the time the monitor wrote on disk, to the millisecond.
    assert not view.locator(".ts").first.is_visible()
    page.check("[data-role=timestamps]")
    first = disk_records(live_berth.worker.state_root, row.engine_id)[0]
    assert first["log"] == "plain start\n"
    assert view.locator(".ln").first.locator(".ts").inner_text() == first["time"][:23].replace("T", " ")
    # Streams: stderr only hides stdout lines.
    page.select_option("[data-role=streams]", "stderr")
    assert view.locator(".ln.out").first.is_hidden() and view.locator(".ln.err").first.is_visible()
    page.select_option("[data-role=streams]", "all")
    # Pause: the container goes on printing; the notice counts what is held back, the view does not grow.
    page.click("[data-role=follow]")
    # A render already scheduled before the pause runs in the next frame: count after two frames.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    shown = view.locator(".ln").count()
    page.wait_for_function("(() => { const m = document.querySelector('[data-role=notice]').textContent"
                           ".match(/Paused: ([0-9,]+) new line/); return m && +m[1] >= 3; })()", timeout=30_000)
    assert view.locator(".ln").count() == shown
    page.click("[data-role=follow]")
    page.wait_for_function(f"document.querySelectorAll('[data-role=view] .ln').length >= {shown + 3}")
    # Download the full log (a container.logs job): the host's file as it was when the job ran, in order.
    page.click("form.logs-download button")
    link = page.locator("[data-role=files] a[data-role=download]")
    link.wait_for(state="visible", timeout=60_000)
    with page.expect_download() as info:
        link.click()
    text = Path(info.value.path()).read_text()
    lines = text.splitlines()
    disk = disk_records(live_berth.worker.state_root, row.engine_id)
    # Timestamps are on in the view, so the download has them too (the form follows the checkbox).
    assert lines == [f"{r['time']} {r['log']}".rstrip("\n") for r in disk[:len(lines)]]
    assert lines[0].endswith("Z plain start") and any(x.endswith(f"Z tick {shown - 4}") for x in lines)  # one held while paused
    ticks = [int(x.split()[-1]) for x in lines if " tick " in x]
    assert ticks == list(range(len(ticks)))
    assert problems == []


def test_kill_with_a_chosen_signal_through_a_job(live_berth, browser, watch, problems, wait_job, wait_for):
    # PID 1 of a container gets only the signals it handles (the kernel drops the rest, as under Docker):
    # this one says which signal came and ends with 128+n, the shell's convention for "killed by n".
    script = ("trap 'echo got USR1; exit 138' USR1; trap 'echo got TERM; exit 143' TERM; "
              "echo ready; while true; do sleep 0.1; done")
    row, job = off_loop(services.create_container, live_berth.user, host=live_berth.worker.host, image="busybox:latest",
                                         name="target", command=["sh", "-c", script])
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    running(wait_for, row)
    page = watch(browser.new_context(viewport={"width": 1200, "height": 900}).new_page())
    login(page, live_berth, live_berth.user)
    page.goto(f"{live_berth.url}/containers/{row.pk}/")
    page.wait_for_function("[...document.querySelectorAll('[data-role=view] .ln .tx')]"
                           ".some(e => e.textContent === 'ready')", timeout=60_000)
    page.select_option("form[data-action=kill] select[name=signal]", "SIGUSR1")
    page.click("form[data-action=kill] button")
    page.wait_for_function("document.querySelector('.container-page h1 [data-field=state]').textContent === 'exited'",
                           timeout=60_000)
    kill = Job.objects.get(kind="container.kill", target_id=str(row.pk))
    assert kill.params == {"signal": "SIGUSR1"} and kill.requested_by == live_berth.user
    assert wait_job(kill).state == Job.State.SUCCEEDED, kill.error
    row.refresh_from_db()
    assert (row.state, row.exit_code) == ("exited", 128 + 10)
    page.wait_for_function("document.querySelector('[data-role=exit]').textContent.includes('138')")
    assert any(r["log"] == "got USR1\n" for r in disk_records(live_berth.worker.state_root, row.engine_id))
    assert problems == []


def test_team_sharing_seen_and_run_by_a_member_and_commit_for_the_team_and_everyone(
        live_berth, browser, watch, problems, wait_job, wait_for):
    team = Team.objects.create(name="crew")
    TeamMembership.objects.create(team=team, user=live_berth.user, role="admin")
    mate = make_user("mate")
    TeamMembership.objects.create(team=team, user=mate, role="operator")
    stranger = make_user("stranger")
    url = live_berth.url

    # The owner makes a container for the team on the dashboard's form.
    owner_page = watch(browser.new_context(viewport={"width": 1200, "height": 900}).new_page())
    login(owner_page, live_berth, live_berth.user)
    owner_page.goto(url + "/containers/new/")
    owner_page.fill("#id_name", "shared-box")
    owner_page.fill("#id_command", "sh -c 'echo made-by-owner > /note; exec sleep 600'")
    owner_page.click("details.more > summary")
    owner_page.select_option("#id_team", str(team.pk))
    owner_page.click("[data-role=submit]")
    owner_page.wait_for_url("**/containers/*/?job=*", timeout=60_000)
    row = Container.objects.get(name="shared-box")
    assert (row.owner, row.team) == (live_berth.user, team)
    running(wait_for, row)

    # A team operator sees it in the list and stops and starts it from its page.
    mate_page = watch(browser.new_context(viewport={"width": 1200, "height": 900}).new_page())
    login(mate_page, live_berth, mate)
    mate_page.goto(url + "/containers/")
    mate_page.locator("a", has_text="shared-box").first.click()
    mate_page.wait_for_url(f"**/containers/{row.pk}/")
    badge = "document.querySelector('.container-page h1 [data-field=state]').textContent"
    mate_page.fill("form[data-action=stop] input[name=timeout]", "1")
    mate_page.click("form[data-action=stop] button")
    mate_page.wait_for_function(f"{badge} === 'exited'", timeout=60_000)
    mate_page.click("form[data-action=start] button")
    mate_page.wait_for_function(f"{badge} === 'running'", timeout=60_000)
    by_mate = [wait_job(j) for j in Job.objects.filter(target_id=str(row.pk), requested_by=mate)]
    assert sorted((j.kind, j.state) for j in by_mate) == [("container.start", "succeeded"),
                                                         ("container.stop", "succeeded")]
    # The team's admin drops the operator from the team while the page is open: its log panel stops following
    # at the consumer's next permission check and says why (checked at the end; the check comes every 30 s).
    mate_page.wait_for_function("document.querySelector('[data-role=status]').textContent === 'live'")
    dropped = off_loop(lambda: client_of(live_berth.user).delete(f"/api/v1/teams/{team.pk}/members/{mate.pk}"))
    assert dropped.status_code == 204, dropped.content[:300]
    # Someone outside the team gets the same answer as for a container that does not exist.
    stranger_page = browser.new_context().new_page()  # not watched: its 404 is the point
    login(stranger_page, live_berth, stranger)
    assert stranger_page.goto(f"{url}/containers/{row.pk}/").status == 404
    stranger_page.goto(url + "/containers/")
    assert stranger_page.locator("a", has_text="shared-box").count() == 0

    # The owner (team admin) commits it for the team, shared with everyone.
    owner_page.goto(f"{url}/containers/{row.pk}/")
    owner_page.click("details.commit > summary")
    owner_page.fill("form[data-action=commit] [name=ref]", "noted:v1")
    owner_page.select_option("form[data-action=commit] [name=team]", str(team.pk))
    owner_page.check("form[data-action=commit] [name=shared]")
    owner_page.click("form[data-action=commit] button[type=submit]")
    commit = wait_for(lambda: Job.objects.filter(kind="container.commit", target_id=str(row.pk)).first(),
                      what="the commit job")
    assert wait_job(commit).state == Job.State.SUCCEEDED, commit.error
    image = Image.objects.get(pk=commit.result["image_id"])
    assert (image.name, image.tag, image.team, image.shared, image.owner) == ("noted", "v1", team, True,
                                                                             live_berth.user)
    # Shared with everyone: the stranger sees it and runs a container from it (the committed file is there).
    stranger_page.goto(url + "/images/")
    stranger_page.locator("#images tr", has_text="noted").wait_for(timeout=30_000)
    mine, job = off_loop(services.create_container, stranger, host=live_berth.worker.host, image="noted:v1",
                                          name="reader", command=["cat", "/note"])
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    wait_for(lambda: (mine.refresh_from_db(), mine.state == "exited")[1], what="the reader to exit")
    assert mine.exit_code == 0
    assert [r["log"] for r in disk_records(live_berth.worker.state_root, mine.engine_id)] == ["made-by-owner\n"]
    mate_page.wait_for_function("document.querySelector('[data-role=notice]').textContent"
                                ".includes('no longer exists, or you may not see it')", timeout=60_000)
    assert mate_page.locator("[data-role=status]").inner_text() == "closed"
    # Its stats panel was refused once (404, as for a container that does not exist) and stopped asking.
    refused = [p for p in problems if p.startswith(f"{url}/containers/{row.pk}/") and "status of 404" in p]
    assert len(refused) == 1 and [p for p in problems if p not in refused] == [], problems



# --- `make run` (manage.py berth_run): Ctrl-C stops web, worker, redis in that order; the next start reconciles ----

class BerthRun:
    """One `manage.py berth_run` on a state root (its SQLite database lives there too), output in `out`."""

    def __init__(self, root: Path, out: Path, port: int, extra_env: dict[str, str]):
        import os
        import sys

        self.url, self.out = f"http://127.0.0.1:{port}", out
        env = {**os.environ, "BERTH_ADMIN_PASSWORD": RUN_PASSWORD, "BERTH_HOST_NAME": "promise-run",
               "BERTH_HEARTBEAT_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
        for var in ("REDIS_URL", "DATABASE_URL", "BERTH_STATE_ROOT", "BERTH_SECRET_KEY", "DJANGO_SECRET_KEY",
                    "DJANGO_ALLOW_ASYNC_UNSAFE"):
            env.pop(var, None)
        env.update(extra_env)  # PostgreSQL in make test's end-to-end part
        with open(out, "wb") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "berth_run", "--root", str(root), "--port", str(port),
                 "--redis-port", "0", "--concurrency", "1"],
                cwd=Path(__file__).resolve().parents[2], env=env, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", self.text())}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


RUN_PASSWORD = "pw-admin-promise-123"


def start_berth_run(root: Path, out: Path, runs: list[BerthRun], wait_for, extra_env: dict[str, str]) -> BerthRun:
    """A berth_run that is up. berth_run binds the port it is given itself: one that another process took
    after we chose it makes it exit saying so, and another port is tried (no collision under load)."""
    for _attempt in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        run = BerthRun(root, out, port, extra_env)
        runs.append(run)

        def up_or_taken(run: BerthRun = run, port: int = port) -> str | None:
            text = run.text()
            if "Berth is up" in text:
                return "up"
            if run.proc.poll() is not None:
                return "taken" if f"port {port} on 127.0.0.1 is taken" in text else "exited"
            return None

        state = wait_for(up_or_taken, timeout=120, what="berth_run to come up", interval=0.2)
        if state == "up":
            return run
        if state == "exited":
            pytest.fail(f"berth_run exited ({run.proc.returncode}):\n{run.text()[-3000:]}")
    pytest.fail("berth_run found no free port in 3 tries")


def api_session(url: str) -> requests.Session:
    s = requests.Session()
    page = s.get(url + "/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    r = s.post(url + "/login/", data={"username": "admin", "password": RUN_PASSWORD, "csrfmiddlewaretoken": token},
               allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:300]
    s.headers["X-CSRFToken"] = s.cookies["csrftoken"]
    s.headers["Referer"] = url + "/"
    return s


def test_ctrl_c_stops_web_worker_redis_in_order_and_the_next_start_reconciles(tmp_path, wait_for, berth_run_env):
    from tests.support import clean_state_root

    root, sync = tmp_path / "root", tmp_path / "sync"
    sync.mkdir()
    runs: list[BerthRun] = []
    try:
        first = start_berth_run(root, tmp_path / "first.out", runs, wait_for, berth_run_env)
        api = api_session(first.url)
        # A container that exits with 7 once the test says so (a file in a bind-mounted directory).
        made = api.post(first.url + "/api/v1/containers", timeout=60, json={
            "image": "busybox:latest", "host": "promise-run", "name": "waiter", "mounts": [f"{sync}:/sync"],
            "command": ["sh", "-c", "while [ ! -e /sync/go ]; do sleep 0.1; done; exit 7"]})
        assert made.status_code == 202, made.text[:500]
        pk = made.json()["container"]["id"]

        def state():
            row = api.get(f"{first.url}/api/v1/containers/{pk}", timeout=30).json()
            return row if row["state"] != "created" else None

        assert wait_for(state, timeout=120, what="the waiter to start")["state"] == "running"
        engine_id = api.get(f"{first.url}/api/v1/containers/{pk}", timeout=30).json()["engine_id"]

        pids = first.pids()
        assert set(pids) == {"redis", "worker", "web"}
        first.proc.send_signal(signal.SIGINT)
        assert first.proc.wait(90) == 0
        # Stopped one at a time (each waited for), web first (no new requests), then the worker, then redis.
        order = re.findall(r"stopping (\w+) \(pid (\d+)\)", first.text())
        assert order == [(name, str(pids[name])) for name in ("web", "worker", "redis")], first.text()[-2000:]
        assert [pid for pid in pids.values() if Path(f"/proc/{pid}").exists()] == []
        # The container outlived Berth (the monitor owns it); it exits while nothing of Berth runs.
        (sync / "go").touch()
        wait_for((root / "containers" / engine_id / "exit.json").exists, what="the waiter to exit meanwhile")

        second = start_berth_run(root, tmp_path / "second.out", runs, wait_for, berth_run_env)
        api = api_session(second.url)

        def recorded():
            row = api.get(f"{second.url}/api/v1/containers/{pk}", timeout=30).json()
            return row if row["state"] == "exited" else None

        row = wait_for(recorded, timeout=120, what="the exit to be recorded by the reconcile at start")
        assert row["exit_code"] == 7
    finally:
        for run in runs:
            run.close()
        clean_state_root(root)
