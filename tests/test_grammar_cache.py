"""The LALR tables are cached between processes only in a folder that only this user can write (Lark
stores them with pickle), and an edited grammar never reads a stale cache."""

from __future__ import annotations

import os

from nodedsl.frontend import parse


def test_cache_lives_in_a_private_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NODEDSL_NO_GRAMMAR_CACHE", raising=False)
    path = parse._cache_file("start")
    assert isinstance(path, str) and path.startswith(str(tmp_path / "nodedsl"))
    assert os.stat(tmp_path / "nodedsl").st_mode & 0o777 == 0o700


def test_no_cache_in_a_folder_others_can_write(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "nodedsl").mkdir()
    os.chmod(tmp_path / "nodedsl", 0o777)
    assert parse._cache_file("start") is False


def test_cache_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("NODEDSL_NO_GRAMMAR_CACHE", "1")
    assert parse._cache_file("start") is False


def test_a_stale_cache_is_not_used(tmp_path, monkeypatch):
    """Lark checks the grammar's hash: a cache written for other text is ignored, the parse still right."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "nodedsl"
    folder.mkdir(mode=0o700)
    (folder / "grammar-start.lark-cache").write_bytes(b"0" * 64 + b"\nnot a cache")
    parse._parser.cache_clear()
    try:
        mod = parse.parse_source("model M { state x = 1\n der(x) = -x }")
        assert mod.models[0].name == "M"
    finally:
        parse._parser.cache_clear()
