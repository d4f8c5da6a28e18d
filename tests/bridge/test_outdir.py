"""Output folders: made when missing, refused in one line when they cannot hold clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from n2m.bridge.outdir import OutDirError, usable_dir


def test_a_missing_folder_is_made_with_its_parents(tmp_path: Path) -> None:
    p = usable_dir(tmp_path / "a" / "b")
    assert p.is_dir() and list(p.iterdir()) == []  # the write probe leaves nothing behind


@pytest.mark.parametrize("rel,where", [("f", "is a file"), ("f/clips", "is under"), ("f/a/b", "is under")])
def test_a_file_on_the_way_is_refused(tmp_path: Path, rel: str, where: str) -> None:
    """A path that is a regular file, or a folder under one (the suite runs as root, so this and not
    permissions is what stops a write)."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutDirError) as err:
        usable_dir(tmp_path / rel, "--out")
    msg = str(err.value)
    assert msg.startswith("--out ") and where in msg and "\n" not in msg
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(OutDirError, match="cannot be written"):
        usable_dir(ro)


def test_a_nul_in_the_path_is_refused() -> None:
    with pytest.raises(OutDirError, match="not a valid path"):
        usable_dir("clips\0x")
