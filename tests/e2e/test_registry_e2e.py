"""Registry and build jobs end to end: the services, a real Celery worker with its own state root, the real
engine, and a real docker-registry with htpasswd on loopback. A team builds an image from a pasted
Containerfile, pushes it with the team's saved credential, pulls it back under another name and runs it; the
secret appears in no job row, no audit event and no worker log line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from containers import jobs
from containers.models import AuditEvent, Image, Job, Team, TeamMembership
from containers.services import registries
from tests.engine.images.registry_server import LocalRegistry, registry_available
from tests.support import clean_state_root

pytestmark = [pytest.mark.e2e, pytest.mark.root,
              pytest.mark.skipif(not registry_available(), reason="docker-registry (Debian package) missing")]

SECRET = "e2e-registry-S3cret-value"


def test_build_push_pull_run_with_a_team_credential(berth_worker, wait_job, tmp_path: Path,
                                                    tmp_path_factory) -> None:
    reg = LocalRegistry(tmp_path / "registry", auth="htpasswd", users={"teambot": SECRET})
    reg.start()
    root = tmp_path_factory.mktemp("rg")  # short: the monitor's socket path is length-limited
    worker = berth_worker("reg-e2e", state_root=root, env={"BERTH_SECRET_KEY": settings.SECRET_KEY})
    try:
        host = worker.host
        assert wait_job(jobs.submit("image.seed", host, params={})).state == Job.State.SUCCEEDED
        user = get_user_model().objects.create_user("dana", password="pw-dana-123")
        team = Team.objects.create(name="team-reg")
        TeamMembership.objects.create(team=team, user=user, role="admin")
        registries.save_credential(user, registry=reg.domain, username="teambot", password=SECRET, team=team.pk)

        built = wait_job(registries.build_image(
            user, host=host, ref="made:1", team=team.pk,
            dockerfile='FROM busybox\nARG WHO=nobody\nRUN echo "built by $WHO" > /built.txt\n'
                       'CMD ["cat", "/built.txt"]\n', build_args={"WHO": "berth"}), timeout=180)
        assert built.state == Job.State.SUCCEEDED, (built.error, built.result)
        assert any("STEP 3/4: RUN" in line for line in built.result["log"])
        image = Image.objects.get(host=host, name="made", tag="1", team=team)

        pushed = wait_job(registries.push_image(user, image, destination=f"{reg.domain}/team/made:1"), timeout=120)
        assert pushed.state == Job.State.SUCCEEDED, pushed.error
        assert pushed.result["blobs_sent"] == 3  # busybox's layer, the RUN's layer, the config

        pulled = wait_job(registries.pull_image(user, host=host, ref=f"{reg.domain}/team/made:1", name="again:1",
                                                team=team.pk), timeout=120)
        assert pulled.state == Job.State.SUCCEEDED, pulled.error
        assert pulled.result["digest"] == pushed.result["digest"] and pulled.result["layers_fetched"] == 0
        again = Image.objects.get(host=host, name="again", tag="1", team=team)
        assert again.digest == image.digest

        # the same pull without the credential is refused by the registry, with the job saying why
        other = get_user_model().objects.create_user("eve", password="pw-eve-123")
        refused = wait_job(registries.pull_image(other, host=host, ref=f"{reg.domain}/team/made:1", name="x:1"),
                           timeout=60)
        assert refused.state == Job.State.FAILED and refused.error_code == "unauthorized"
        assert "asks for a login" in refused.error

        from workers.engine.containers import ContainerManager

        m = ContainerManager(root)
        c = m.create(again.engine_ref)
        m.start(c["id"])
        assert m.wait(c["id"], timeout=60)["exit_code"] == 0
        assert "".join(r["log"] for r in m.logs(c["id"])) == "built by berth\n"
        m.remove(c["id"], force=True)

        rows = json.dumps(list(Job.objects.values("params", "result", "message", "error")), default=str)
        audit = json.dumps(list(AuditEvent.objects.values("detail", "target_repr")), default=str)
        assert SECRET not in rows and SECRET not in audit and SECRET not in worker.log()
    finally:
        worker.discard()
        reg.stop()
        clean_state_root(root)
