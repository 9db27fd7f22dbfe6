"""Encryption at rest for secrets the pipeline stores (rotated refresh tokens).

The key is ``MSADS_FERNET_KEY``; else Airflow's ``AIRFLOW__CORE__FERNET_KEY``; else, for a laptop,
a key generated once into ``.local/fernet.key`` (git-ignored, mode 600), which ``make run`` also
hands to Airflow so the CLI and the DAGs read the same tokens. Several comma-separated keys may be
given to rotate keys, as in Airflow: the first encrypts, any decrypts.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from include.msads_capi.errors import MsadsError
from include.msads_capi.paths import local_dir
from include.msads_capi.settings import load

if TYPE_CHECKING:
    from pathlib import Path


def local_key_file() -> Path:
    return local_dir() / "fernet.key"


def key_material() -> str:
    """The configured key(s), generating the local key file on first use."""
    configured = load().fernet_key
    if configured:
        return configured
    path = local_key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Fernet.generate_key().decode())
    return path.read_text().strip()


@cache
def _fernet(material: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.strip().encode()) for k in material.split(",") if k.strip()])
    except (ValueError, TypeError) as exc:
        raise MsadsError("the Fernet key is not valid (32 url-safe base64 bytes); generate one "
                         "with: python -c 'from cryptography.fernet import Fernet; "
                         "print(Fernet.generate_key().decode())'") from exc


def encrypt(plain: str) -> str:
    return _fernet(key_material()).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(key_material()).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise MsadsError("a stored token cannot be decrypted with the current Fernet key; "
                         "restore the key (MSADS_FERNET_KEY) or sign in again with msads auth "
                         "login") from exc
