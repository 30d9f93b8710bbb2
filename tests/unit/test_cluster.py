"""The cluster start check and the CPU share per date, from what the workers report (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon.cluster import WorkerReport, cluster_settings, shared_folder_problems, threads_per_date
from recon.config import Settings

INBOX, OUT = Path("/shared/inbox"), Path("/shared/out")
DAYS = ["2026-11-27", "2026-11-28"]


def worker(address: str, host: str = "h1", *, problems=(), dates=DAYS, probe: str | None = None,
           sees: list[str] | None = None, cpus: int = 8, nthreads: int = 1) -> WorkerReport:
    probe = f"probe-{address}" if probe is None else probe
    return WorkerReport(address=address, host=host, cpus=cpus, nthreads=nthreads,
                        problems=list(problems), dates_seen=list(dates), probe=probe,
                        probes_seen=sees if sees is not None else [])


def test_workers_sharing_both_folders_pass():
    probes = ["probe-tcp://a:1", "probe-tcp://b:1"]
    assert shared_folder_problems([worker("tcp://a:1", sees=probes),
                                   worker("tcp://b:1", sees=probes)], INBOX, OUT) == []


def test_a_worker_with_its_own_out_folder_is_named():
    # b wrote its check file into a local folder: a does not see it, and b does not see a's.
    lines = shared_folder_problems([worker("tcp://a:1", sees=["probe-tcp://a:1"]),
                                    worker("tcp://b:1", "h2", sees=["probe-tcp://b:1"])],
                                   INBOX, OUT)
    assert lines == [
        "worker tcp://a:1 (host h1) does not share the out folder /shared/out with the other "
        "workers (misses the check files of 1 of 2)",
        "worker tcp://b:1 (host h2) does not share the out folder /shared/out with the other "
        "workers (misses the check files of 1 of 2)"]


def test_a_worker_that_cannot_see_the_inbox_is_named_and_the_others_are_not():
    probes = ["probe-tcp://a:1", "probe-tcp://b:1"]
    lines = shared_folder_problems(
        [worker("tcp://a:1", sees=probes),
         worker("tcp://b:1", "h2", problems=["cannot see the inbox /shared/inbox"], dates=[],
                probe="", sees=["probe-tcp://a:1"])], INBOX, OUT)
    assert lines == ["worker tcp://b:1 (host h2) cannot see the inbox /shared/inbox"]


def test_a_worker_that_sees_fewer_date_folders_is_named():
    probes = ["probe-tcp://a:1", "probe-tcp://b:1"]
    lines = shared_folder_problems([worker("tcp://a:1", sees=probes),
                                    worker("tcp://b:1", "h2", dates=DAYS[:1], sees=probes)],
                                   INBOX, OUT)
    assert lines == ["worker tcp://b:1 (host h2) sees 1 of the 2 date folders in /shared/inbox "
                     "that other workers see (not the shared inbox?)"]


@pytest.mark.parametrize("reports, expected", [
    ([worker("tcp://a:1", cpus=2), worker("tcp://b:1", cpus=2)], {"tcp://a:1": 1, "tcp://b:1": 1}),
    ([worker("tcp://a:1", cpus=8), worker("tcp://b:1", "h2", cpus=8, nthreads=2)],
     {"tcp://a:1": 8, "tcp://b:1": 4}),
    ([worker(f"tcp://a:{n}", cpus=2) for n in range(3)], {f"tcp://a:{n}": 1 for n in range(3)}),
], ids=["two workers share a 2-core host", "one per host, one with two threads",
        "more workers than cores"])
def test_workers_on_one_host_share_its_cpus(reports, expected):
    assert threads_per_date(reports) == expected


def test_cluster_settings_make_folders_absolute_and_let_a_retry_wait_for_the_lock(tmp_path,
                                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = cluster_settings(Settings(inbox=Path("inbox"), out=Path("out")))
    assert (settings.inbox, settings.out) == (tmp_path / "inbox", tmp_path / "out")
    assert settings.lock_wait_seconds > 0
    assert cluster_settings(Settings(lock_wait_seconds=0)).lock_wait_seconds == 0
