"""`make bench`: the real CLI, end to end, on synthetic days of 100k and 1M installments.

Generates the days once (cached in ./bench-data), runs `recon run` as a subprocess into PostgreSQL
and into SQLite, and prints wall time per phase (from the run's step log), total wall time and
peak resident memory of the process (from wait4); then the same 1M day through an independent
SQL implementation of the contract (tests/bench/sql_reference.py), 30 days of 100k with
`--jobs 2` against one day, the same 30 days on two local Dask workers (`--cluster`, when
recon[cluster] is installed), and which of the targets of issues 4 and 15 are met. A tool, not a
test: nothing here asserts a time.

    python -m tests.bench.run                       # everything (what `make bench` runs)
    python -m tests.bench.run --sizes 100000 --targets sqlite --range-days 0
    python -m tests.bench.run --sql-reference ""    # skip the independent SQL implementation
    python -m tests.bench.run --sizes 100000 --targets postgres --sql-reference ""  # ranges

PostgreSQL comes from RECON_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1/postgres);
a database `recon_bench` (or RECON_BENCH_DATABASE) is (re)created on that server for each run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from recon.db.urls import normalise_url

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench-data"
DAY = dt.date(2026, 11, 27)
PHASES = ["load", "classify", "outages", "compare", "plan", "act", "write_csv", "write_db"]  # pipeline steps


def ensure_day(size: int, day: dt.date = DAY) -> Path:
    inbox = DATA / f"inbox-{size}"
    if not (inbox / day.isoformat() / "installments.csv").is_file():
        print(f"generating {size:,} installments for {day} into {inbox} ...", flush=True)
        # In a child process: a forked child counts the parent's memory in its own peak RSS
        # until it execs, so this process must stay small for the memory figures to be right.
        subprocess.run([sys.executable, "-m", "tests.synth", "--date", day.isoformat(),
                        "--installments", str(size), "--out", str(inbox),
                        "--seed", str(size % 9973 + day.toordinal())],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return inbox


def fresh_postgres() -> str:
    server = normalise_url(os.environ.get("RECON_BENCH_DATABASE_URL",
                                          "postgresql://postgres@127.0.0.1/postgres"))
    name = os.environ.get("RECON_BENCH_DATABASE", "recon_bench")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"RECON_BENCH_DATABASE {name!r} is not a plain database name")
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def fresh_sqlite(size: int) -> str:
    path = DATA / f"bench-{size}.db"
    for stale in DATA.glob(f"bench-{size}.db*"):
        stale.unlink()
    return f"sqlite:///{path}"


STEP_LINE = re.compile(r"\] (\w+) done in ([0-9.]+)s")


def run_cli(args: list[str], database_url: str) -> tuple[int, float, int, dict[str, float]]:
    """Run `recon` with `args`: (exit code, wall seconds, peak RSS in MiB, seconds per step and
    "cpu", its CPU seconds)."""
    command = [str(Path(sys.executable).parent / "recon"), *args, "--db", database_url, "-v"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode not in (0, 4):
        print(stderr, file=sys.stderr)
    steps = {name: float(seconds) for name, seconds in STEP_LINE.findall(stderr)}
    # CPU seconds (user + system, every thread) say more than wall time on a loaded machine.
    steps["cpu"] = usage.ru_utime + usage.ru_stime
    return process.returncode, wall, usage.ru_maxrss // 1024, steps


def bench_day(size: int, target: str) -> dict:
    inbox = ensure_day(size)
    database_url = fresh_postgres() if target == "postgres" else fresh_sqlite(size)
    out = DATA / f"out-{target}-{size}"
    code, wall, rss, steps = run_cli(["run", "--date", DAY.isoformat(), "--inbox", str(inbox),
                                      "--out", str(out)], database_url)
    row = {"size": size, "target": target, "exit": code, "total": wall, "rss_mib": rss, **steps}
    if target == "postgres":
        row["truth"] = check_truth(database_url, inbox / DAY.isoformat())
    return row


def check_truth(database_url: str, day_dir: Path) -> bool:
    """Whether the run's stored outcomes, settlement exceptions and rejects are the generator's
    truth (tests/bench/truth.py, in a child process: this one stays small)."""
    done = subprocess.run([sys.executable, "-m", "tests.bench.truth", "--db", database_url,
                           "--day-dir", str(day_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    print(f"{day_dir.parent.name}, recon into PostgreSQL:\n  "
          + "\n  ".join(done.stdout.strip().splitlines()), flush=True)
    return done.returncode == 0


def bench_range(days: int, size: int, jobs: int) -> dict:
    first = DAY - dt.timedelta(days=days - 1)
    for n in range(days):
        ensure_day(size, first + dt.timedelta(days=n))
    inbox = DATA / f"inbox-{size}"
    database_url = fresh_postgres()
    _, one_day, _, _ = run_cli(["run", "--date", DAY.isoformat(), "--inbox", str(inbox),
                                    "--out", str(DATA / "out-range")], database_url)
    code, wall, rss, _ = run_cli(["run", "--from", first.isoformat(), "--to", DAY.isoformat(),
                               "--jobs", str(jobs), "--inbox", str(inbox),
                               "--out", str(DATA / "out-range")], database_url)
    return {"days": days, "size": size, "jobs": jobs, "exit": code, "range_seconds": wall,
            "one_day_seconds": one_day, "ratio": wall / one_day, "rss_mib": rss}


def bench_cluster_range(days: int, size: int, workers: int) -> dict:
    """The same range on a local Dask cluster: a scheduler and `workers` one-thread workers
    started (and waited for) before the clock starts, then `recon run --cluster`."""
    import json

    from distributed import Client

    first = DAY - dt.timedelta(days=days - 1)
    inbox = DATA / f"inbox-{size}"
    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = DATA / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        while not scheduler_file.is_file() or not scheduler_file.read_text().strip():
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(workers):
            processes.append(subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)
        database_url = fresh_postgres()
        code, wall, _, _ = run_cli(["run", "--from", first.isoformat(), "--to",
                                    DAY.isoformat(), "--cluster", address, "--inbox",
                                    str(inbox), "--out", str(DATA / "out-range")], database_url)
    finally:
        # Workers are killed outright: a graceful close waits on a scheduler that is going too.
        for worker in processes[1:]:
            worker.kill()
        processes[0].terminate()
        for process in processes:
            process.wait(timeout=60)
    return {"days": days, "size": size, "workers": workers, "exit": code,
            "range_seconds": wall}


def bench_sql_reference(size: int) -> dict:
    """The same day through tests/bench/sql_reference.py, an independent implementation of the
    contract in PostgreSQL SQL: its total wall seconds and its agreement with the day's truth."""
    inbox = ensure_day(size)
    command = [sys.executable, "-m", "tests.bench.sql_reference", "--inbox", str(inbox),
               "--date", DAY.isoformat()]
    server = os.environ.get("RECON_BENCH_DATABASE_URL")
    if server:
        command += ["--db", server]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if done.returncode != 0:
        print(done.stdout, file=sys.stderr)
        return {"size": size, "exit": done.returncode}
    total = re.search(r"^total\s+([0-9.]+)$", done.stdout, re.MULTILINE)
    agreement = re.search(r"^against _truth\.csv .*$", done.stdout, re.MULTILINE)
    return {"size": size, "exit": 0, "total": float(total.group(1)) if total else float("nan"),
            "process": time.perf_counter() - started,
            "agreement": agreement.group(0) if agreement else "no truth check"}


NATIVE_PROFILES = ROOT / "fixtures" / "native" / "profiles"


def ensure_native_day(size: int) -> Path:
    """The `size` day with its settlements in three native formats (tests/native_days.py):
    UNIONPAY fixed-width GB18030, LIANLIAN gzip'd pipe-delimited GBK in fen, CNAPS_DD pain.002."""
    contract = ensure_day(size)
    native = DATA / f"native-{size}"
    if not (native / DAY.isoformat() / "installments.csv").is_file():
        print(f"converting the {size:,} day to native formats into {native} ...", flush=True)
        subprocess.run([sys.executable, "-m", "tests.native_days", "--inbox", str(contract),
                        "--date", DAY.isoformat(), "--out", str(native)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return native


def bench_native(size: int) -> dict:
    """The same day from contract CSV and from native formats through profiles, into fresh
    PostgreSQL databases, twice each, alternating: (best contract, best native) seconds."""
    contract, native = ensure_day(size), ensure_native_day(size)
    os.sync()
    best = {"contract": float("inf"), "native": float("inf")}
    steps = {}
    for _ in range(2):
        for kind, inbox, extra in (("contract", contract, []),
                                   ("native", native, ["--profiles", str(NATIVE_PROFILES)])):
            code, wall, rss, phase = run_cli(["run", "--date", DAY.isoformat(), "--inbox",
                                              str(inbox), "--out", str(DATA / f"out-{kind}"),
                                              *extra], fresh_postgres())
            if code not in (0, 4):
                return {"size": size, "exit": code}
            if wall < best[kind]:
                best[kind], steps[kind] = wall, {**phase, "rss_mib": rss, "exit": code}
    return {"size": size, "exit": 0, **best, "steps": steps}


def print_table(rows: list[dict]) -> None:
    header = ["installments", "database", "exit"] + PHASES + ["total s", "CPU s", "peak RSS MiB"]
    lines = [header]
    for row in rows:
        lines.append([f"{row['size']:,}", row["target"], str(row["exit"])]
                     + [f"{row.get(phase, float('nan')):.2f}" for phase in PHASES]
                     + [f"{row['total']:.2f}", f"{row['cpu']:.2f}", f"{row['rss_mib']:,}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for number, line in enumerate(lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--targets", default="postgres,sqlite")
    parser.add_argument("--range-days", type=int, default=30,
                        help="days of 100k run as one --jobs range against one day; 0 for none")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--native", default="1000000",
                        help="sizes to also run with settlements in native formats (issue 13); "
                             "empty for none")
    parser.add_argument("--sql-reference", default="1000000",
                        help="sizes to also run through the independent SQL implementation "
                             "(tests/bench/sql_reference.py); empty for none")
    options = parser.parse_args(argv)
    DATA.mkdir(exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, {platform.platform()}")
    # Every day is generated before anything is timed, and written out to disk: a run should
    # not share the machine with the generator or with the kernel flushing its files.
    for size in filter(None, options.sizes.split(",")):
        ensure_day(int(size))
    for back in range(options.range_days):
        ensure_day(100000, DAY - dt.timedelta(days=back))
    for size in filter(None, options.native.split(",")):
        ensure_native_day(int(size))
    os.sync()
    rows = [bench_day(int(size), target) for size in filter(None, options.sizes.split(","))
            for target in options.targets.split(",")]
    if rows:
        print_table(rows)
    sizes = {row["size"]: row for row in rows if row["target"] == "postgres"}
    targets: list[tuple[str, bool]] = []  # (issue 4's target, met)
    big, small = sizes.get(1000000), sizes.get(100000)
    if big:
        targets.append((f"1M into PostgreSQL under 15 s: {big['total']:.1f} s",
                        big["total"] < 15))
        targets.append(("1M into PostgreSQL: exit 0, every installment's status and root cause, "
                        "every settlement exception and reject as the generator's truth",
                        big["exit"] == 0 and big["truth"]))
        targets.append((f"1M peak memory under 2.5 GB: {big['rss_mib'] / 1024:.2f} GiB",
                        big["rss_mib"] * 1024 * 1024 < 2.5e9))
    if big and small:
        ratio = big["total"] / small["total"]
        print(f"1M / 100k total time (postgres): {ratio:.1f}x")
        targets.append((f"1M at most 11 x 100k: {ratio:.1f}x", ratio <= 11))
    for size in filter(None, options.sql_reference.split(",")):
        reference = bench_sql_reference(int(size))
        if reference["exit"] != 0:
            print(f"independent SQL implementation, {int(size):,}: failed "
                  f"(exit {reference['exit']})")
            continue
        ours = sizes.get(int(size))
        versus = f"; recon into PostgreSQL: {ours['total']:.1f} s" if ours else ""
        print(f"independent SQL implementation, same {int(size):,} day: "
              f"{reference['total']:.1f} s from first file to outcomes{versus}")
        print(f"  {reference['agreement']}")
        if ours:
            targets.append((f"recon not slower than the SQL implementation at {int(size):,}: "
                            f"{ours['total']:.1f} s vs {reference['total']:.1f} s",
                            ours["total"] <= reference["total"]))
    for size in filter(None, options.native.split(",")):
        native = bench_native(int(size))
        if native["exit"] != 0:
            print(f"native formats, {int(size):,}: failed (exit {native['exit']})")
            continue
        ratio = native["native"] / native["contract"]
        loads = {kind: native["steps"][kind].get("load", float("nan")) for kind in native["steps"]}
        print(f"native formats (fixed-width GB18030, gzip'd delimited GBK in fen, pain.002), "
              f"{int(size):,} into PostgreSQL: {native['native']:.1f} s vs contract CSV "
              f"{native['contract']:.1f} s = {ratio:.2f}x (load {loads['native']:.2f} s vs "
              f"{loads['contract']:.2f} s; exits {native['steps']['native']['exit']}/"
              f"{native['steps']['contract']['exit']})")
        targets.append((f"{int(size):,} in native formats within 1.5 x contract CSV: "
                        f"{ratio:.2f}x", ratio <= 1.5))
    if options.range_days:
        result = bench_range(options.range_days, 100000, options.jobs)
        print(f"{result['days']} days of {result['size']:,} with --jobs {result['jobs']}: "
              f"{result['range_seconds']:.1f} s = {result['ratio']:.1f} x one day "
              f"({result['one_day_seconds']:.1f} s), exit {result['exit']}, peak RSS "
              f"{result['rss_mib']:,} MiB")
        targets.append((f"{result['days']} days of 100k with --jobs {result['jobs']} under 18 x "
                        f"one day: {result['ratio']:.1f}x", result["ratio"] < 18))
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("no Dask range: recon[cluster] is not installed")
        else:
            on_cluster = bench_cluster_range(options.range_days, 100000, options.jobs)
            ratio = on_cluster["range_seconds"] / result["range_seconds"]
            print(f"{on_cluster['days']} days of {on_cluster['size']:,} on {on_cluster['workers']} "
                  f"local Dask workers: {on_cluster['range_seconds']:.1f} s = {ratio:.2f} x "
                  f"--jobs {result['jobs']}, exit {on_cluster['exit']}")
            targets.append((f"{on_cluster['days']} days of 100k on {on_cluster['workers']} Dask "
                            f"workers within 10% of --jobs {result['jobs']}: {ratio:.2f}x",
                            ratio <= 1.10))
    if targets:
        print("\ntargets (issues 4, 13 and 15):")
        for text, met in targets:
            print(f"  [{'met' if met else 'MISSED'}] {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
