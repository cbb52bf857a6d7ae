"""Settings come from the environment; the secret key is generated once into the state root."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from containers.management.commands.berth_run import Command

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'key': s.SECRET_KEY, 'debug': s.DEBUG, 'db': s.DATABASES['default']['ENGINE'], "
    "'db_name': str(s.DATABASES['default']['NAME']), 'host': s.BERTH_HOST_NAME, 'root': str(s.BERTH_STATE_ROOT), "
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'broker': s.CELERY_BROKER_URL}))"
)


def settings_in_subprocess(**env: str) -> dict:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "webapp.settings", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env={**base, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_secret_key_is_generated_once_into_the_state_root(tmp_path):
    first = settings_in_subprocess(BERTH_STATE_ROOT=str(tmp_path))
    second = settings_in_subprocess(BERTH_STATE_ROOT=str(tmp_path))
    key_file = tmp_path / "secret_key"
    assert first["key"] == second["key"] == key_file.read_text().strip()
    assert len(first["key"]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first["debug"] is False
    assert first["db"] == "django.db.backends.sqlite3" and first["db_name"] == str(tmp_path / "berth.sqlite3")
    assert first["layer"] == "channels_redis.core.RedisChannelLayer"
    assert first["root"] == str(tmp_path) and first["host"] == os.uname().nodename


def test_environment_overrides(tmp_path):
    got = settings_in_subprocess(
        BERTH_STATE_ROOT=str(tmp_path), BERTH_SECRET_KEY="s" * 60, BERTH_DEBUG="1", BERTH_HOST_NAME="node-x",
        DATABASE_URL="postgres://berth:pw@db.invalid:5432/berth", REDIS_URL="redis://127.0.0.1:6390/2",
    )
    assert got["key"] == "s" * 60 and got["debug"] is True and got["host"] == "node-x"
    assert got["db"] == "django.db.backends.postgresql" and got["db_name"] == "berth"
    assert got["broker"] == "redis://127.0.0.1:6390/2"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.django_db
def test_admin_user_password_generated_once_or_from_env(monkeypatch):
    monkeypatch.delenv("BERTH_ADMIN_PASSWORD", raising=False)
    cmd = Command()
    line = cmd._ensure_admin()
    generated = line.split(" / ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(generated)
    assert "unchanged" in cmd._ensure_admin()  # never shown again
    monkeypatch.setenv("BERTH_ADMIN_PASSWORD", "pw-from-env-123")
    assert "pw-from-env-123" not in cmd._ensure_admin()
    admin.refresh_from_db()
    assert admin.check_password("pw-from-env-123")
