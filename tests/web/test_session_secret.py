"""The web session secret: owner-only whatever the umask, made once even by racing processes, never empty."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from edi_gateway.private_files import PrivateFileError
from edi_gateway.web.auth import SECRET_FILE, session_secret


def test_the_secret_is_created_0600_in_a_0700_home_under_umask_000(tmp_path: Path) -> None:
    """With umask 000 the new home is 0700 and the secret file 0600, and the secret is long."""
    old = os.umask(0)
    try:
        value = session_secret(tmp_path / "home")
    finally:
        os.umask(old)
    assert len(value) >= 40
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "home" / SECRET_FILE).stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["", "\n", "tooshort"])
def test_an_empty_or_short_secret_file_is_an_error_not_a_key(tmp_path: Path, content: str) -> None:
    """A secret file that is empty or too short (e.g. left by a crash) is refused, never used to sign."""
    (tmp_path / SECRET_FILE).write_text(content, encoding="ascii")
    with pytest.raises(PrivateFileError, match=SECRET_FILE.replace(".", r"\.")):
        session_secret(tmp_path)


def test_an_operator_written_secret_with_a_newline_is_used_without_it(tmp_path: Path) -> None:
    """A secret an operator wrote with a trailing newline is read as the text before it."""
    (tmp_path / SECRET_FILE).write_text("s" * 48 + "\n", encoding="ascii")
    assert session_secret(tmp_path) == "s" * 48


def _read_secret(
    home: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue[str]
) -> None:
    start.wait()
    out.put(session_secret(Path(home)))


def test_processes_starting_together_share_one_non_empty_secret(tmp_path: Path) -> None:
    """Eight processes released at once all read one and the same non-empty secret, the one on disk."""
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    home = tmp_path / "home"
    procs = [ctx.Process(target=_read_secret, args=(str(home), start, out)) for _ in range(8)]
    for p in procs:
        p.start()
    start.set()
    seen = {out.get(timeout=30) for _ in procs}
    for p in procs:
        p.join(10)
    assert [p.exitcode for p in procs] == [0] * 8
    (value,) = seen
    assert len(value) >= 40 and value == (home / SECRET_FILE).read_text(encoding="ascii")
