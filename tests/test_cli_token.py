"""`landing token`: issue a bearer token whose digest the app then accepts."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from conftest import DEV_CONFIG

from callback_api.auth import TokenVerifier
from callback_api.cli import main
from callback_api.errors import Forbidden


def _project(tmp_path: Path, tokens: Path) -> Path:
    root = tmp_path / "project"
    (root / "nginx-conf" / "environments").mkdir(parents=True)
    text = DEV_CONFIG.read_text() + f'\n[auth]\nenabled = true\ntokens_file = "{tokens}"\n'
    (root / "nginx-conf" / "environments" / "dev.toml").write_text(text)
    shutil.copytree(DEV_CONFIG.parents[2] / "static", root / "static")
    return root


def test_token_appends_its_digest_and_prints_the_token_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = tmp_path / "tokens"
    root = _project(tmp_path, tokens)
    assert main(["token", "--root", str(root), "--scopes", "read", "--label", "ci"]) == 0
    reader = capsys.readouterr().out.strip()
    assert main(["token", "--root", str(root)]) == 0
    writer = capsys.readouterr().out.strip()
    digest = hashlib.sha256(reader.encode()).hexdigest()
    writer_digest = hashlib.sha256(writer.encode()).hexdigest()
    assert tokens.read_text() == f"{digest} read ci\n{writer_digest} read,write\n"
    assert reader not in tokens.read_text()
    assert tokens.stat().st_mode & 0o777 == 0o640
    verifier = TokenVerifier(tokens, "landing", public_reads=False)
    verifier.authorize(f"Bearer {reader}", "GET")
    verifier.authorize(f"Bearer {writer}", "PUT")
    with pytest.raises(Forbidden):
        verifier.authorize(f"Bearer {reader}", "PUT")


def test_token_refuses_to_extend_a_broken_tokens_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("not-a-digest read\n")
    root = _project(tmp_path, tokens)
    assert main(["token", "--root", str(root)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "the first word is not a SHA-256 digest" in captured.err
    assert tokens.read_text() == "not-a-digest read\n"


def test_token_refuses_an_unknown_scope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tokens = tmp_path / "tokens"
    root = _project(tmp_path, tokens)
    assert main(["token", "--root", str(root), "--scopes", "admin"]) == 1
    assert "unknown scope in 'admin'" in capsys.readouterr().err
    assert not tokens.exists()
