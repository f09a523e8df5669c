"""Owner-only local state: the HOME folder, the SQLite file, private keys and secrets.

Everything the gateway keeps under ``EDI_GATEWAY_HOME`` is for the account that runs it alone: folders
are created mode 0700 and files 0600, set explicitly after creation so the process umask cannot
loosen (or oddly tighten) them.

Secrets (the web session secret, the patient key) are created once and atomically: the content is
written and synced under a temporary name, then hard-linked to the final name, which fails when the
name exists. Two processes starting at once therefore end with one complete secret that both read;
nobody ever sees an empty or half-written file. A secret file that is empty, too short or unreadable
is an error, never a usable key.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from edi_gateway.errors import EdiGatewayError

DIR_MODE = 0o700
FILE_MODE = 0o600


class PrivateFileError(EdiGatewayError):
    """A private file under HOME is unusable (unreadable, empty, too short); the message names it."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with the leaf owner-only (0700); return it.

    A folder that exists already is left as it is: an operator may have set its mode on purpose.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return path
    os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> None:
    """Create ``path`` as an empty owner-only (0600) file when it does not exist; never truncate it.

    For files another library fills in, such as the SQLite database: created here first, they get
    the owner-only mode instead of the library's default (0644 less the umask).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path``, replacing it atomically; the file has ``mode`` from its first byte.

    A reader sees the old content or the new one, never a partial write.
    """
    tmp = _synced_temporary(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_once(path: Path, data: bytes) -> bool:
    """Create the owner-only file ``path`` holding ``data`` unless it exists; return True if created.

    The file appears complete or not at all, and of several concurrent callers exactly one wins.
    """
    tmp = _synced_temporary(path, data, FILE_MODE)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def read_secret(path: Path, *, min_bytes: int, text: bool = False) -> bytes:
    """Return the content of the secret file ``path``.

    Args:
        path: the file.
        min_bytes: the shortest content that counts as a secret.
        text: the secret is text: surrounding whitespace (a trailing newline) is dropped first.

    Raises:
        FileNotFoundError: the file does not exist (the caller may create it).
        PrivateFileError: it cannot be read, or holds fewer than ``min_bytes`` bytes.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PrivateFileError(f"{path.name} under EDI_GATEWAY_HOME cannot be read ({exc.strerror})") from exc
    if text:
        data = data.strip()
    if len(data) < min_bytes:
        state = "empty" if not data else f"shorter than {min_bytes} bytes"
        raise PrivateFileError(f"{path.name} under EDI_GATEWAY_HOME is {state}; remove it to make a new one")
    return data


def secret(path: Path, make: Callable[[], bytes], *, min_bytes: int, text: bool = False) -> bytes:
    """Return the secret in ``path``, creating it once from ``make()`` (owner-only) when missing.

    Args:
        path: the file.
        make: returns a fresh secret; called only when the file does not exist.
        min_bytes: the shortest content that counts as a secret.
        text: as for :func:`read_secret`.

    Raises:
        PrivateFileError: the file exists but is unreadable, empty or too short.
    """
    try:
        return read_secret(path, min_bytes=min_bytes, text=text)
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    create_once(path, make())
    return read_secret(path, min_bytes=min_bytes, text=text)


def _synced_temporary(path: Path, data: bytes, mode: int) -> Path:
    # mkstemp creates the file 0600 beside the target (one file system, so link and replace are
    # atomic); the content is on disk before the file gets its final name.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp
