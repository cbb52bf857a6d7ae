"""The networks story through the dashboard in Debian's chromium: create a network, run a web server on it
with a published port, open the port from the container page's link, and see the network list it."""

from __future__ import annotations

from containers.models import Container, Network


def test_network_container_and_published_port_in_the_browser(live_berth, browser, watch, problems):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/networks/")
    page.fill("#id_name", "site")
    page.fill("#id_subnet", "10.231.50.0/24")
    with page.expect_navigation():
        page.click("#network-form button[type=submit]")
    page.locator("#networks tr", has_text="10.231.50.0/24").wait_for()
    net = Network.objects.get(name="site", owner=live_berth.user)

    page.goto(live_berth.url + "/containers/new/")
    page.wait_for_selector("#live-status.on")
    page.fill("#id_name", "web")
    page.fill("#id_command", "httpd -f -p 80 -h /etc")
    page.click("details.more summary")
    page.fill("#id_networks", "site")
    page.fill("#id_ports", "80")
    page.click("[data-role=submit]")
    page.wait_for_url("**/containers/*/?job=*", timeout=60_000)
    page.wait_for_function("document.querySelector('.container-page h1 [data-field=state]').textContent === 'running'",
                           timeout=60_000)
    row = Container.objects.get(name="web", owner=live_berth.user)
    page.reload()  # addresses and ports are the host's answer, stored when the job finished
    link = page.locator("[data-field=ports] a").first
    link.wait_for()
    href = link.get_attribute("href")
    assert href.startswith("http://127.0.0.1:") and "80/tcp" in link.inner_text()
    assert "10.231.50.2/24" in page.locator("[data-field=networks]").inner_text()
    served = ctx.new_page()
    served.goto(href + "hostname")
    assert served.locator("body").inner_text().strip() == row.engine_id[:12]
    page.goto(live_berth.url + "/networks/")
    assert "10.231.50.2" in page.locator(f"#network-{net.pk}").inner_text()
    assert problems == []
