"""The host's second check of a job's registry credential (workers/handlers/registry.py): a job naming team A's
credential runs only for an operator/admin of team A pulling for team A; anyone else's job fails before any
request, with a message that names no secret. (A job row is what a forged or replayed task would carry.)"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from containers import registry_secrets
from containers.models import Host, Job, RegistryCredential, Team, TeamMembership
from workers.handlers import registry as handler
from workers.tasks import JobError

pytestmark = pytest.mark.django_db
SECRET = "handler-S3cret"


@pytest.fixture
def world():
    User = get_user_model()
    host = Host.objects.create(name="h", last_heartbeat=timezone.now())
    a, b = Team.objects.create(name="a"), Team.objects.create(name="b")
    users = {n: User.objects.create_user(n, password="pw-x-123456") for n in ("a_op", "a_view", "b_admin", "solo")}
    TeamMembership.objects.create(team=a, user=users["a_op"], role="operator")
    TeamMembership.objects.create(team=a, user=users["a_view"], role="viewer")
    TeamMembership.objects.create(team=b, user=users["b_admin"], role="admin")
    team_cred = RegistryCredential.objects.create(registry="r.example:5000", username="bot", team=a,
                                                  owner=users["a_op"], secret=registry_secrets.encrypt(SECRET))
    solo_cred = RegistryCredential.objects.create(registry="r.example:5000", username="me", owner=users["solo"],
                                                  secret=registry_secrets.encrypt(SECRET))
    return host, a, b, users, team_cred, solo_cred


def _job(host, user, cred, team=None) -> Job:
    return Job.objects.create(kind="image.pull", host=host, requested_by=user,
                              params={"credential_id": cred.pk, "team_id": team.pk if team else None})


def test_only_the_rightful_requester_gets_the_secret(world) -> None:
    host, a, b, users, team_cred, solo_cred = world
    creds = handler._credentials(_job(host, users["a_op"], team_cred, a), a)
    assert (creds.username, creds.password) == ("bot", SECRET)
    assert handler._credentials(_job(host, users["solo"], solo_cred), None).password == SECRET
    refused = [
        (users["b_admin"], team_cred, b),  # team B naming team A's credential
        (users["b_admin"], team_cred, a),  # ... even claiming team A, where they have no role
        (users["a_view"], team_cred, a),  # a viewer of A may not use A's secrets
        (users["a_op"], team_cred, None),  # A's credential for a personal image
        (users["a_op"], solo_cred, None),  # someone else's personal credential
    ]
    for user, cred, team in refused:
        with pytest.raises(JobError) as e:
            handler._credentials(_job(host, user, cred, team), team)
        assert "not yours to use" in str(e.value) and SECRET not in str(e.value)
