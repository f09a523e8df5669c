"""The repository holds everything its tests read: a clone on its own collects the whole suite.

Data-driven tests list their folder through ``data_files``, which fails loudly when the folder is
missing or empty, so a lost data folder is a collection error, never a quiet run of zero cases.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, data_files


def test_data_files_lists_the_matches_sorted(tmp_path: Path) -> None:
    """data_files returns every file matching the pattern below the folder, in sorted order."""
    (tmp_path / "v1").mkdir()
    for name in ("b.xml", "a.xml", "v1/c.xml", "notes.txt"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert data_files(tmp_path, "**/*.xml") == [tmp_path / "a.xml", tmp_path / "b.xml", tmp_path / "v1/c.xml"]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_data_files_refuses_a_missing_or_empty_folder(tmp_path: Path, make: str) -> None:
    """A folder that is missing, or holds nothing that matches, raises FileNotFoundError naming it."""
    folder = tmp_path / "requests"
    if make == "empty":
        folder.mkdir()
        (folder / "README.md").write_text("x", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="requests"):
        data_files(folder, "*.json")


def test_a_clone_alone_collects_every_test_without_errors(tmp_path: Path) -> None:
    """`git clone` of the committed tree into an empty folder collects the suite with no error.

    Nothing is beside the clone, so a test reading material from outside the repository fails to
    collect here. The clone is run with this interpreter, whose packages are the locked ones.
    """
    git = shutil.which("git")
    assert git is not None, "git is needed (scripts/_provision.sh installs it)"
    clone = tmp_path / "edi_gateway"
    subprocess.run(
        [git, "clone", "--quiet", "--depth", "1", f"file://{REPO}", str(clone)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edi_gateway"]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = collected.stdout.strip().splitlines()[-1] if collected.stdout.strip() else ""
    assert collected.returncode == 0, collected.stdout[-4000:] + collected.stderr[-2000:]
    assert "error" not in summary, summary
    count = int(summary.split()[0])
    assert count > 500, summary  # the suite, not a remnant of it
