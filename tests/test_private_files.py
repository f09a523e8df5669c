"""Owner-only folders and files whatever the umask; secrets created once, atomically, never empty."""

from __future__ import annotations

import multiprocessing
import stat
import threading
from pathlib import Path

import pytest

from edi_gateway.private_files import (
    PrivateFileError,
    create_once,
    private_dir,
    private_file,
    read_secret,
    secret,
    write_atomically,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_folders_and_files_are_owner_only_under_umask_000(tmp_path: Path) -> None:
    """private_dir makes 0700, private_file, write_atomically and create_once make 0600, with umask 000."""
    home = private_dir(tmp_path / "a" / "home")
    private_file(home / "db.sqlite3")
    write_atomically(home / "key.pem", b"key")
    assert create_once(home / "secret", b"s" * 40)
    assert _mode(home) == 0o700
    assert [_mode(home / n) for n in ("db.sqlite3", "key.pem", "secret")] == [0o600, 0o600, 0o600]


@pytest.mark.usefixtures("open_umask")
def test_write_atomically_gives_the_mode_asked_for(tmp_path: Path) -> None:
    """A certificate may be written world-readable on purpose (0644), whatever the umask."""
    write_atomically(tmp_path / "cert.pem", b"cert", mode=0o644)
    assert _mode(tmp_path / "cert.pem") == 0o644


def test_private_file_never_truncates_an_existing_file(tmp_path: Path) -> None:
    """An existing database file keeps its content (and its mode) when private_file runs again."""
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"data")
    path.chmod(0o640)
    private_file(path)
    assert (path.read_bytes(), _mode(path)) == (b"data", 0o640)


def test_create_once_keeps_the_first_content_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    """A second create_once returns False and changes nothing; no temporary file is left behind."""
    path = tmp_path / "secret"
    assert create_once(path, b"first" * 10)
    assert not create_once(path, b"second" * 10)
    assert path.read_bytes() == b"first" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]


@pytest.mark.parametrize(("content", "state"), [(b"", "empty"), (b" \n", "empty"), (b"short", "shorter")])
def test_an_empty_or_short_secret_is_an_error(tmp_path: Path, content: bytes, state: str) -> None:
    """A secret file that is empty, blank or too short is refused with a message naming the file."""
    path = tmp_path / "web-session.secret"
    path.write_bytes(content)
    with pytest.raises(PrivateFileError, match=rf"web-session\.secret under EDI_GATEWAY_HOME is {state}"):
        secret(path, lambda: b"x" * 64, min_bytes=32, text=True)
    assert path.read_bytes() == content  # refused, not silently replaced


def test_an_unreadable_secret_is_an_error(tmp_path: Path) -> None:
    """A secret that cannot be read (here: a folder in its place) is an error, not a missing file."""
    (tmp_path / "secret").mkdir()
    with pytest.raises(PrivateFileError, match="cannot be read"):
        read_secret(tmp_path / "secret", min_bytes=1)


def test_a_binary_secret_keeps_its_whitespace_bytes(tmp_path: Path) -> None:
    """Binary secrets are read as they are: a key starting or ending with a newline byte is whole."""
    key = b"\n" + b"k" * 30 + b" "
    (tmp_path / "key").write_bytes(key)
    assert read_secret(tmp_path / "key", min_bytes=32) == key


def test_threads_racing_to_create_a_secret_all_read_the_same_one(tmp_path: Path) -> None:
    """Sixteen threads starting together end with one non-empty secret, and every one of them reads it."""
    path = tmp_path / "home" / "secret"
    barrier = threading.Barrier(16)
    seen: list[bytes] = []

    def race(n: int) -> None:
        barrier.wait()
        seen.append(secret(path, lambda: f"secret of thread {n:02d} ".encode() * 4, min_bytes=32))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 16 and len(set(seen)) == 1
    assert seen[0] == path.read_bytes() and seen[0].startswith(b"secret of thread")


def _race_in_process(
    path: str, n: int, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue[bytes]
) -> None:
    start.wait()
    out.put(secret(Path(path), lambda: f"secret of process {n:02d} ".encode() * 4, min_bytes=32))


def test_processes_racing_to_create_a_secret_all_read_the_same_one(tmp_path: Path) -> None:
    """Eight processes released at once end with one non-empty secret file that every process read."""
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    path = tmp_path / "home" / "secret"
    procs = [ctx.Process(target=_race_in_process, args=(str(path), n, start, out)) for n in range(8)]
    for p in procs:
        p.start()
    start.set()
    seen = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
    assert [p.exitcode for p in procs] == [0] * 8
    assert len(set(seen)) == 1 and seen[0] == path.read_bytes() and seen[0].startswith(b"secret of process")
