"""Who owns what, without anything forgeable on disk or in a page.

A browser session's identity is a random secret (`sid`) that lives only in the server's memory and
in that browser's session cookie, together with the server's signature of it (`sid.signature`), so
the server accepts only ids it issued. Runs record their owner as `owner_id(sid)`, an HMAC of the
secret with a key kept in the runs folder: reading a checkpoint, config.json or a page reveals
nothing that opens another session, and ownership survives a server restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Optional

from .paths import runs_dir

log = logging.getLogger(__name__)

KEY_FILE = ".server_key"
_keys: dict[str, bytes] = {}
_lock = threading.Lock()


def server_key(root: Optional[Path] = None) -> bytes:
    """The secret key of this server's runs folder (created on first use, readable by its owner only)."""
    folder = Path(root) if root is not None else runs_dir()
    path = folder / KEY_FILE
    with _lock:
        key = _keys.get(str(path))
        if key is None:
            key = _read_or_create(path)
            _keys[str(path)] = key
        return key


def _read_or_create(path: Path) -> bytes:
    try:
        key = path.read_bytes()
        if len(key) == 32:
            return key
    except OSError:
        pass
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes()
    except OSError as exc:  # a read-only runs folder: ownership then lasts until the server restarts
        log.warning("cannot save the server key in %s (%s): run ownership will not survive a restart", path, exc)
    return key


def _sign(sid: str, root: Optional[Path] = None) -> str:
    return hmac.new(server_key(root), b"session:" + sid.encode(), hashlib.sha256).hexdigest()[:32]


def issue_session(root: Optional[Path] = None) -> tuple[str, str]:
    """A new session: (its secret id, the cookie value `sid.signature` that proves the server issued it)."""
    sid = secrets.token_hex(16)
    return sid, f"{sid}.{_sign(sid, root)}"


def session_from_cookie(value: str, root: Optional[Path] = None) -> Optional[str]:
    """The session id in a cookie value this server issued, else None (a forged or foreign value)."""
    sid, _, signature = value.partition(".")
    if len(sid) != 32 or not all(c in "0123456789abcdef" for c in sid):
        return None
    return sid if hmac.compare_digest(signature, _sign(sid, root)) else None


def owner_id(sid: str, root: Optional[Path] = None) -> str:
    """The one-way id under which a session's runs are saved (never the session secret itself)."""
    return "u-" + hmac.new(server_key(root), b"owner:" + sid.encode(), hashlib.sha256).hexdigest()[:24]


# --- the teacher -----------------------------------------------------------------------------------------
ENV_TEACHER_KEY = "GAN_TEACHER_KEY"
_teachers: set[str] = set()  # session ids that gave the key (server memory only: a restart forgets them)


def teacher_key_set() -> bool:
    """Whether the server's operator set a teacher key ($GAN_TEACHER_KEY): without one, no session is the teacher."""
    return bool(os.environ.get(ENV_TEACHER_KEY, ""))


def grant_teacher(sid: str, entered: str) -> bool:
    """Make the session `sid` the teacher if `entered` is the teacher key (compared in constant time)."""
    key = os.environ.get(ENV_TEACHER_KEY, "")
    if not key or not hmac.compare_digest(entered.encode(), key.encode()):
        return False
    with _lock:
        _teachers.add(sid)
    return True


def is_teacher(sid: str) -> bool:
    """Whether the session `sid` gave the teacher key (and the server still has one)."""
    with _lock:
        return teacher_key_set() and sid in _teachers
