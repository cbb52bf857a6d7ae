"""The web side never reads a host's disk: no code under containers/ or webapp/ names a state root (the setting,
a host's `state_root` fact, its `exports`/`uploads` dirs) or imports an engine module that works on a state
root (image store, container manager, volumes, monitor). Pure engine modules (the spec, its values and errors,
references) are fine. `berth_run` and `berth_agent` are exempt: each starts a host's worker on its machine; settings.py keeps the
web server's own files (its SQLite database, secret key, staging dir) under BERTH_STATE_ROOT by default."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXEMPT = {"containers/management/commands/berth_run.py", "containers/management/commands/berth_agent.py",
          "webapp/settings.py"}
PURE_ENGINE = {
    "workers.engine.containers.spec", "workers.engine.containers.spec_values", "workers.engine.containers.config",
    "workers.engine.containers.errors", "workers.engine.containers.states", "workers.engine.images.refs",
    "workers.engine.images.errors", "workers.engine.monitor.redis_sink",
    # pure parsers and error classes of networks, registries and builds
    "workers.engine.net.errors", "workers.engine.net.ports.parse", "workers.engine.images.registry_ref",
    "workers.engine.images.registry_pull.parse_platform", "workers.engine.images.build.dockerfile",
    "workers.engine.images.build.errors",
    # Redis key names and Redis-held samples of exec sessions and stats (Redis is a link the web side has)
    "workers.engine.monitor.exec_relay.in_key", "workers.engine.monitor.exec_relay.out_key",
    "workers.engine.containers.stats_history",
    # reads the web server's OWN staged upload (its staging dir), never a host's
    "workers.engine.images.sniff.refuse_image_archive",
    # releases a flock on an fd it is given (the web server's own transfer files)
    "workers.engine.flocks",
}
HOST_NAMES = {"BERTH_STATE_ROOT", "state_root", "exports_dir", "export_path"}


def web_modules() -> list[Path]:
    files = [*sorted((REPO / "containers").rglob("*.py")), *sorted((REPO / "webapp").rglob("*.py"))]
    return [f for f in files if "migrations" not in f.parts and str(f.relative_to(REPO)) not in EXEMPT]


def problems_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workers"):
            names = [f"{node.module}.{a.name}" for a in node.names]
            bad = [n for n in names if n not in PURE_ENGINE and node.module not in PURE_ENGINE]
            if bad:
                found.append(f"{where} imports {', '.join(bad)}")
        elif isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names
                      if a.name.startswith("workers") and a.name not in PURE_ENGINE]
        elif isinstance(node, ast.Attribute) and node.attr in HOST_NAMES:
            found.append(f"{where} uses .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in HOST_NAMES:
            found.append(f"{where} uses {node.id}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in HOST_NAMES | {
                "exports"}:
            found.append(f"{where} uses {node.value!r}")
    return found


def test_no_web_module_touches_a_hosts_state_root():
    problems = [p for f in web_modules() for p in problems_in(f)]
    assert problems == [], "\n".join(problems)


def test_the_check_sees_the_ways_a_module_could_reach_a_host_path(tmp_path):
    sample = REPO / "containers" / "_sample_for_the_check.py"
    sample.write_text('from django.conf import settings\nfrom workers.engine.images import ImageStore\n'
                      'import workers.engine.containers.manager\n'
                      'root = settings.BERTH_STATE_ROOT\npath = host.facts["state_root"] + "/exports"\n'
                      'from workers.engine.containers.spec import ContainerSpec\n')
    try:
        found = problems_in(sample)
    finally:
        sample.unlink()
    assert [p.split(" ", 1)[1] for p in found] == [
        "imports workers.engine.images.ImageStore", "imports workers.engine.containers.manager",
        "uses .BERTH_STATE_ROOT", "uses 'state_root'"], found
