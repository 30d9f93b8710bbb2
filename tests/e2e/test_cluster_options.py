"""`recon run --cluster` refusals that need no cluster: an SQLite database, and an install
without the cluster extra. Each is one line on stderr and exit 2."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.helpers import DAYS, recon, subprocess_env


def test_an_sqlite_file_on_a_cluster_is_refused(tmp_path):
    done = recon("run", "--date", DAYS[0], "--db", f"sqlite:///{tmp_path / 'recon.db'}",
                 "--cluster", "tcp://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "SQLite file" in done.stderr and "postgresql://" in done.stderr
    assert not (tmp_path / "recon.db").exists()


def test_without_distributed_the_option_says_how_to_install_it(tmp_path):
    # distributed made unimportable, as on an install without the cluster extra.
    code = ("import sys; sys.modules['distributed'] = None; from recon.cli import main; "
            "main()")
    done = subprocess.run([sys.executable, "-c", code, "run", "--date", DAYS[0], "--db",
                           "postgresql://nobody@127.0.0.1:9/none", "--cluster",
                           "tcp://127.0.0.1:9"], cwd=tmp_path, text=True, capture_output=True,
                          env=subprocess_env(), timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "pip install 'recon[cluster]'" in done.stderr


def test_jobs_and_cluster_together_are_refused(tmp_path):
    done = recon("run", "--from", DAYS[0], "--to", DAYS[1], "--jobs", "2", "--db",
                 "postgresql://nobody@127.0.0.1:9/none", "--cluster", "tcp://127.0.0.1:9",
                 cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["recon: give either --jobs or --cluster, not both"]
