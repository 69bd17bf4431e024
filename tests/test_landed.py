"""The body-file check on a real filesystem, below the HTTP layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callback_api.errors import BadRequest, Forbidden
from callback_api.landed import _open_beneath, open_landed


def _nginx_file(temp: Path, content: bytes = b"body") -> Path:
    path = temp / "1" / "32" / "0000000321"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return path


def test_the_walk_refuses_a_level_directory_swapped_for_a_symlink(tmp_path: Path) -> None:
    # What a racer could do after the lexical check: the walk alone must hold.
    temp = tmp_path / "temp"
    elsewhere = tmp_path / "elsewhere"
    _nginx_file(elsewhere, b"secret")
    (temp / "1").mkdir(parents=True)
    (temp / "1" / "32").symlink_to(elsewhere / "1" / "32")
    with pytest.raises(Forbidden) as caught:
        _open_beneath(temp, Path("1/32/0000000321"), "/x")
    assert caught.value.detail == "upload path '/x' leaves the temp dir through a symlink"


def test_the_walk_refuses_a_body_file_swapped_for_a_symlink(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    (temp / "1" / "32").mkdir(parents=True)
    (temp / "1" / "32" / "0000000321").symlink_to("/etc/passwd")
    with pytest.raises(Forbidden):
        _open_beneath(temp, Path("1/32/0000000321"), "/x")


def test_a_valid_body_file_opens_with_its_size(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    path = _nginx_file(temp, b"twelve bytes")
    with open_landed(str(path), "12", temp, (1, 2), allow_empty=False) as landed:
        assert landed.size == 12
        assert landed.head(4) == b"twel"
        assert os.fstat(landed.fd).st_ino == path.stat().st_ino


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("0000000321", "is not an Nginx temp file name"),
        ("1/23/0000000321", "is not an Nginx temp file name"),
        ("1/32/000000321", "is not an Nginx temp file name"),
        ("1/32/../32/0000000321", None),
    ],
)
def test_names_that_nginx_would_not_make_are_refused(
    tmp_path: Path, relative: str, message: str | None
) -> None:
    temp = tmp_path / "temp"
    _nginx_file(temp)
    header = f"{temp}/{relative}"
    if message is None:  # normalised to a valid name: accepted
        with open_landed(header, None, temp, (1, 2), allow_empty=False) as landed:
            assert landed.size == 4
        return
    with pytest.raises(Forbidden) as caught:
        open_landed(header, None, temp, (1, 2), allow_empty=False)
    assert message in caught.value.detail


def test_a_size_other_than_announced_is_refused(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    path = _nginx_file(temp, b"four")
    with pytest.raises(BadRequest) as caught:
        open_landed(str(path), "5", temp, (1, 2), allow_empty=False)
    assert str(caught.value) == "upload file has 4 bytes but Nginx announced 5"
