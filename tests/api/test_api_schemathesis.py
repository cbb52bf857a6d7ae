"""schemathesis against /api/schema/ of a live server (uvicorn, as `make run`), every operation.

`make test` runs a fixed amount: a fixed seed, deterministic generation, a fixed number of examples per
operation and no --max-time (a time budget makes what is tested depend on the machine's load), so every
run sends the same requests and gives the same answer. `make fuzz` (BERTH_FUZZ=1) runs far more
examples with a fresh seed, printed so that a failure can be replayed with BERTH_FUZZ_SEED.

Two runs: the first checks every operation with every check except the operations below,
which the second run checks with every check but "a schema-valid request is accepted", because their
validity depends on more than a schema can say:
- POST /images/import and /images/load: the body must be a real archive (the schema says "binary");
- POST /containers: limits that depend on the chosen host and image (cpus <= the host's CPUs, memory
  of at least 6 MiB given as a size string, environment variable names, mount sources, NUL bytes);
- POST /images/pull, /images/{id}/push, /images/build, /registries: Docker's reference grammar, a registry
  host name, a Containerfile that parses;
- POST /networks: a gateway needs a subnet; POST /containers/{id}/move and /copy: the host must be another
  host than the container's.
The host has no worker: job endpoints must answer 202 with a queued Job, never 500.
One schemathesis worker: with two, hypothesis' lambda-source parsing in threads sometimes trips CPython
3.11's "AST constructor recursion depth mismatch" inside schemathesis (a runtime error of the tool).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.fuzzing import FUZZ, amount, seed

pytestmark = pytest.mark.e2e

SEMANTIC = ("containers_create", "images_import_create", "images_load_create",
            # issue 15: a reference, a registry host and a Containerfile each have a grammar a schema cannot say
            "images_pull_create", "images_build_create", "images_push_create", "registries_create",
            # issue 13: a gateway needs a subnet (and a free one); issue 18: the target host must be another one
            "networks_create", "containers_move_create", "containers_copy_create")


EXAMPLES = amount(4, 50)  # per operation and phase
RUN_SEED = seed()
# A guard against a hung tool, not a budget: the fixed run takes a fraction of it.
HANG_GUARD_S = 3600 if FUZZ else 240


def _run(server, tmp_path, name: str, *args: str) -> tuple[int, int, str]:
    """(operations tested, test cases generated, summary) of one schemathesis run; fails on any failure."""
    # deterministic generation implies no example database; a fuzz run must not replay one either
    generation = ["--generation-database", "none"] if FUZZ else ["--generation-deterministic"]
    proc = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", server.url + "/api/schema/",
         "-H", f"Authorization: Bearer {server.token}", "--max-examples", str(EXAMPLES), "--workers", "1",
         "--seed", str(RUN_SEED), *generation, "--no-color",
         "--request-timeout", "20", *args],
        capture_output=True, text=True, timeout=HANG_GUARD_S, cwd=tmp_path)  # its cache goes there
    out = proc.stdout
    (tmp_path / f"schemathesis-{name}.out").write_text(out + proc.stderr)
    summary = out[out.rfind("SUMMARY"):] if "SUMMARY" in out else out[-3000:]
    print(f"--- schemathesis run {name} (seed {RUN_SEED}, {EXAMPLES} examples):\n{summary}")
    if proc.returncode != 0:  # the server's errors say what a 500 was (its log goes with the tmp dir)
        errors = re.findall(r"^\S+ \S+ ERROR .*?(?=^\S+ \S+ (?:WARNING|INFO|ERROR) |\Z)", server.log(), re.M | re.S)
        pytest.fail(out[-12000:] + proc.stderr[-2000:] + "\n--- server errors:\n" + "".join(errors)[-8000:])
    tested = re.search(r"Tested: (\d+)", out)
    cases = re.search(r"(\d+) generated", out)
    assert tested and cases, summary
    return int(tested.group(1)), int(cases.group(1)), summary


@pytest.mark.timeout(2 * HANG_GUARD_S + 120)
def test_schemathesis(api_server, world, tmp_path):
    from containers.models import Container, Host, Job

    # No worker serves this host: it shows offline, so logs requests answer 202 at once instead of waiting.
    Host.objects.filter(pk=world.host.pk).update(last_heartbeat=None)
    # follow=true on a running container streams until it stops (as `docker logs -f`): with nothing running,
    # a followed log ends instead of running into the request timeout.
    Container.objects.update(state="exited")

    exclude = [arg for op in SEMANTIC for arg in ("--exclude-operation-id", op)]
    include = [arg for op in SEMANTIC for arg in ("--include-operation-id", op)]
    ops_all, cases_all, _ = _run(api_server, tmp_path, "all-checks", "--checks", "all", *exclude)
    ops_sem, cases_sem, _ = _run(api_server, tmp_path, "semantic", "--checks", "all", "--exclude-checks",
                                 "positive_data_acceptance", *include)
    # the docs page works offline: its assets come from the pinned sidecar package, served by the app
    import requests

    docs = requests.get(api_server.url + "/api/docs/", timeout=30)
    assets = re.findall(r'src="(/static/[^"]+\.js)"', docs.text)
    assert docs.status_code == 200 and assets
    assert all(requests.get(api_server.url + a, timeout=30).status_code == 200 for a in assets)
    print(f"schemathesis: {ops_all + ops_sem} operations tested, {cases_all + cases_sem} test cases, 0 failures")
    # every operation of the schema was tested (a count from the schema, not a number written down)
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert ops_all + ops_sem == sum(1 for item in paths.values() for m in item
                                    if m in ("get", "post", "put", "patch", "delete"))
    # what the fuzzing queued stays queued (no worker): nothing half-done, nothing failed
    assert set(Job.objects.values_list("state", flat=True)) <= {"queued", "cancelled", "succeeded"}
