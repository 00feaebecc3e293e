"""Secrets made on first use (signing key, cohort secrets) are whole from the moment they
exist: processes making one at once agree on it, and none sees a half-written file."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from statbox import privatefile
from statbox.certify.certificates import Keys
from statbox.certify.variants import cohort_secret
from statbox.privatefile import create_private_file

PLACES = {"signing key": "secrets/certify/signing.key", "cohort secret": "secrets/certify/c.key"}
PROCESSES = 6


def make(secret: str, state: Path) -> bytes:
    if secret == "cohort secret":
        return cohort_secret(state, "c")
    key = Keys(state).signing_key()
    assert key is not None
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def make_at_once(secret: str, state: Path, start: Any, results: Any) -> None:
    start.wait()
    try:
        results.put(("ok", make(secret, state)))
    except BaseException as exc:
        results.put(("error", repr(exc)))


@pytest.mark.parametrize("secret", PLACES, ids=list(PLACES))
def test_made_at_once_by_many_all_get_the_same_whole_secret(secret, tmp_path):
    fork = multiprocessing.get_context("fork")
    for attempt in range(10):
        state = tmp_path / str(attempt)
        start, results = fork.Barrier(PROCESSES), fork.Queue()
        workers = [
            fork.Process(target=make_at_once, args=(secret, state, start, results))
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        got = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join()
        assert [kind for kind, _ in got] == ["ok"] * PROCESSES, got
        assert len({value for _, value in got}) == 1
        path = state / PLACES[secret]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
        assert make(secret, state) == got[0][1]  # and it is the one kept


def test_a_secret_is_not_there_until_it_is_whole(tmp_path, monkeypatch):
    path = tmp_path / "secrets" / "signing.key"
    seen_while_writing = []
    real_fsync = privatefile.os.fsync

    def fsync(descriptor: int) -> None:  # the moment a backup or a reader could look
        seen_while_writing.append(path.exists())
        real_fsync(descriptor)

    monkeypatch.setattr(privatefile.os, "fsync", fsync)
    assert create_private_file(path, b"whole secret\n") == b"whole secret\n"
    assert seen_while_writing == [False]
    assert path.read_bytes() == b"whole secret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_first_secret_made_is_kept(tmp_path):
    path = tmp_path / "c.key"
    assert create_private_file(path, b"first") == b"first"
    assert create_private_file(path, b"second") == b"first"  # another process lost the race
    assert path.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["c.key"]
