"""Loading the KEK ring from settings (objects.md §1.3).

Outside embedded mode `SECRET_STORE_KEK` is required. In embedded mode without it a
random key is generated once into `<CARACAL_DATA_DIR>/secret-store.kek` (mode 0600) and
reused by every later start and command on that data directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from caracal_api.config import ConfigError, Settings
from caracal_api.kit.envelope import KEY_BYTES, KeyRing, WeakKeyError, check_kek

KEK_FILE_NAME = "secret-store.kek"


def load_keyring(settings: Settings) -> KeyRing:
    """Build the key ring, or raise ConfigError naming the variable."""
    current = settings.secret_store_kek
    if current is None:
        if not settings.embedded_postgres:
            raise ConfigError("SECRET_STORE_KEK", "is required outside embedded mode")
        current = embedded_kek(settings.data_dir)
    try:
        return KeyRing(current, settings.secret_store_kek_previous)
    except WeakKeyError as exc:
        raise ConfigError("SECRET_STORE_KEK", str(exc)) from None


def embedded_kek(data_dir: Path) -> bytes:
    """Read the data directory's generated KEK, creating it on first use.

    The key is written to a private temporary file and hard-linked into place, so two
    processes starting at once agree on one key and never read a half-written file.
    """
    path = data_dir / KEK_FILE_NAME
    if path.exists():
        return _read_kek_file(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{KEK_FILE_NAME}.{os.getpid()}.tmp"
    key = _random_strong_key()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return _read_kek_file(path)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def _random_strong_key() -> bytes:
    while True:
        key = os.urandom(KEY_BYTES)
        try:
            return check_kek(key)
        except WeakKeyError:  # pragma: no cover - astronomically unlikely
            continue


def _read_kek_file(path: Path) -> bytes:
    text = path.read_text(encoding="ascii").strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ConfigError("SECRET_STORE_KEK", f"{path} does not hold 64 hex characters")
    try:
        return check_kek(bytes.fromhex(text))
    except WeakKeyError as exc:
        raise ConfigError("SECRET_STORE_KEK", f"{path}: {exc}") from None
