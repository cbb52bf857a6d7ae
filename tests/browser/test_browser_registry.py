"""Browser (Debian's chromium, Playwright) against a live Berth and a real docker-registry on loopback: a pull
whose bar reaches 100 %, and a build from a pasted Containerfile whose log streams into the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from containers.models import Image
from tests.engine.images.registry_server import LocalRegistry, registry_available

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.browser,
              pytest.mark.skipif(not registry_available(), reason="docker-registry (Debian package) missing")]


def test_pull_progress_and_build_log(live_berth, browser, watch, problems, tmp_path: Path) -> None:
    from workers.engine.images import registry
    from workers.engine.images.store import ImageStore

    reg = LocalRegistry(tmp_path / "registry")
    reg.start()
    try:
        registry.push(ImageStore(live_berth.worker.state_root), "busybox:latest", f"{reg.domain}/lib/bb:1")
        page = watch(browser.new_context(viewport={"width": 1200, "height": 900}).new_page())
        live_berth.login(page)

        page.goto(live_berth.url + "/images/pull/")
        page.fill("#id_ref", f"{reg.domain}/lib/bb:1")
        page.fill("#id_name", "pulled:1")
        page.click("#pull-form [data-role=submit]")
        page.wait_for_function("document.getElementById('pull-progress').value === 100", timeout=60_000)
        assert "Pulled as pulled:1" in page.locator("#pull-phase").inner_text()
        pulled = Image.objects.get(name="pulled", tag="1", owner=live_berth.user)
        # The image page says where it came from.
        page.goto(f"{live_berth.url}/images/{pulled.pk}/")
        assert page.locator("[data-field=origin]").inner_text().startswith(f"pulled from {reg.domain}/lib/bb:1 by ")

        page.goto(live_berth.url + "/images/build/")
        page.fill("#id_ref", "built:1")
        page.fill("#id_dockerfile", "FROM busybox\nRUN echo hello-from-the-build-log\nCMD [\"true\"]\n")
        page.click("#build-form [data-role=submit]")
        page.wait_for_function("document.getElementById('build-log').textContent.includes('STEP 2/3')",
                               timeout=60_000)
        page.wait_for_function("document.getElementById('build-progress').value === 100", timeout=120_000)
        log = page.locator("#build-log").inner_text()
        assert "hello-from-the-build-log" in log and "STEP 3/3: CMD" in log
        assert "Built built:1" in page.locator("#build-phase").inner_text()
        built = Image.objects.get(name="built", tag="1", owner=live_berth.user)
        page.goto(f"{live_berth.url}/images/{built.pk}/")
        assert page.locator("[data-field=origin]").inner_text().startswith("built by ")
        assert problems == []
    finally:
        reg.stop()
