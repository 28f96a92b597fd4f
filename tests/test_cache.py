"""The training cache's keys, atomic writes, size cap and the `inceptionzoo cache` command."""

import os
import time

import pytest

from inceptionzoo.cli import main
from inceptionzoo.train.data import cache


def _entry(folder, name, size, last_used):
    path = folder / name
    path.write_bytes(b"x" * size)
    os.utime(path, (last_used, last_used))
    return path


def test_a_key_changes_with_every_input_and_the_format(monkeypatch, tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"one")
    first = cache.cache_key("dataset", cache.file_stamps([image]), ["a", "b"], "train")
    assert first == cache.cache_key("dataset", cache.file_stamps([image]), ["a", "b"], "train")
    assert first != cache.cache_key("dataset", cache.file_stamps([image]), ["a", "c"], "train")
    assert first != cache.cache_key("dataset", cache.file_stamps([image]), ["a", "b"], "test")
    image.write_bytes(b"two")  # same size: the modification time tells
    os.utime(image, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert first != cache.cache_key("dataset", cache.file_stamps([image]), ["a", "b"], "train")
    monkeypatch.setattr(cache, "CACHE_FORMAT", cache.CACHE_FORMAT + 1)
    assert cache.cache_key("dataset", [], "train") != first
    with pytest.raises(ValueError, match="unknown cache kind 'pixels'"):
        cache.cache_key("pixels")


def test_writes_are_atomic_and_leave_no_temporary_file(tmp_path):
    target = tmp_path / "features-abc"

    def broken(partial):
        partial.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.write_entry(target, broken)
    assert list(tmp_path.iterdir()) == []  # neither the entry nor a temporary file
    cache.write_entry(target, lambda partial: partial.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["features-abc"]


def test_the_least_recently_used_entries_go_first_and_the_new_one_stays(tmp_path):
    now = time.time()
    old = _entry(tmp_path, "dataset-old", 400, now - 300)
    used = _entry(tmp_path, "shards-used", 400, now - 200)
    other = _entry(tmp_path, "not-an-entry.txt", 10_000, now - 400)  # not ours: never counted or deleted
    stale = _entry(tmp_path, ".dataset-x.123.abcd.partial", 10, now - 3 * 24 * 3600)  # a killed writer's
    assert cache.read_entry(used)  # a hit marks it as just used
    cache.write_entry(tmp_path / "features-new", lambda p: p.write_bytes(b"y" * 400), keep_under=900)
    assert not old.exists() and used.exists() and (tmp_path / "features-new").exists()
    assert other.exists() and not stale.exists()
    # an entry larger than the cap on its own is still kept: the run that made it uses it
    cache.write_entry(tmp_path / "features-big", lambda p: p.write_bytes(b"z" * 2000), keep_under=900)
    assert [e.path.name for e in cache.cache_entries(tmp_path)] == ["features-big"]


def test_the_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("INCEPTIONZOO_CACHE_MAX_GB", "0.5")
    assert cache.max_cache_bytes() == 2**29
    monkeypatch.setenv("INCEPTIONZOO_CACHE_MAX_GB", "lots")
    with pytest.raises(ValueError, match="INCEPTIONZOO_CACHE_MAX_GB must be a number"):
        cache.max_cache_bytes()


def test_the_cache_command_lists_and_clears_by_kind(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("INCEPTIONZOO_CACHE", str(tmp_path))
    now = time.time()
    _entry(tmp_path, "dataset-1", 2**20, now - 10)
    _entry(tmp_path, "features-2", 2**20, now)
    assert main(["cache", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"{tmp_path}: 2 entries, 2.0 MiB" in listed and "dataset-1" in listed and "features-2" in listed
    assert main(["cache", "clear", "--kind", "features"]) == 0
    assert "removed 1 entry (1.0 MiB)" in capsys.readouterr().out
    assert [e.path.name for e in cache.cache_entries()] == ["dataset-1"]
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert cache.cache_entries(tmp_path) == []
