"""The speech cache lives in the service's own private directory, never a shared predictable /tmp path."""
from __future__ import annotations

import os
import stat
import tempfile

import pytest

from hardware.speech.cache import PhraseCache, default_cache_dir


def test_the_cache_is_the_services_cache_directory_not_tmp(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "cache"))  # what systemd's CacheDirectory= sets
    assert default_cache_dir() == tmp_path / "cache" / "speech"
    monkeypatch.delenv("CACHE_DIRECTORY")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = PhraseCache()
    assert cache.directory == tmp_path / "xdg" / "clinicflow" / "speech"
    assert not str(cache.directory).startswith(tempfile.gettempdir() + "/clinicflow-speech")
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700


def test_a_directory_others_could_write_is_closed_and_a_planted_link_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert stat.S_IMODE(PhraseCache(shared).directory.stat().st_mode) == 0o700
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "planted").symlink_to(target)
    with pytest.raises(PermissionError):
        PhraseCache(tmp_path / "planted")


def test_the_chime_is_written_under_a_fresh_name_never_through_a_planted_file(tmp_path):
    cache = PhraseCache(tmp_path / "speech")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (cache.directory / "chime.tmp").symlink_to(victim)  # the fixed temp name earlier versions used
    chime = cache.chime()
    assert victim.read_text() == "precious"
    assert chime.stat().st_size > 44 and not chime.is_symlink()
    assert [p.name for p in cache.directory.iterdir() if p.name.startswith(".chime-")] == []
    assert os.access(chime, os.R_OK)
