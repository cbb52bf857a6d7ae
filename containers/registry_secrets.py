"""Encryption at rest of registry secrets: Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key
from settings.BERTH_CREDENTIALS_KEY when set, else derived from SECRET_KEY with HKDF (so a database dump alone
does not reveal them). The worker that uses a credential decrypts it with the same settings."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _fernet() -> Fernet:
    material = (getattr(settings, "BERTH_CREDENTIALS_KEY", "") or settings.SECRET_KEY).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"berth-registry-credentials",
               info=b"fernet key v1").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("the saved credential cannot be decrypted (the key changed): save it again") from None
