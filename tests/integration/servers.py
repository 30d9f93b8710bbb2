"""Servers a fault test starts and stops itself: a pgbouncer in transaction-pooling mode, a
private PostgreSQL cluster it may restart and reconfigure. Never the shared server.

Each skips with a reason when its program is not installed here, and fails under CI=true
(`.ci/run` installs pgbouncer; the PostgreSQL server packages bring pg_createcluster).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from recon.db.urls import normalise_url

PGBOUNCER_PORT = 6440  # this workstream's pgbouncer ports: 6440-6449
CLUSTER_PORT = 5440  # and private clusters: 5440-5449


def missing(program: str, why: str) -> None:
    message = f"{program} is not installed here ({why})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true: this test must run (.ci/run installs it)")
    pytest.skip(message)


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text() if log.exists() else ""
                raise RuntimeError(f"server on port {port} did not start:\n{text}") from None
            time.sleep(0.05)


def _as_postgres(path: Path) -> None:
    """Running as root: the servers run as `postgres`, which must own their files."""
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


@contextmanager
def pgbouncer(server_url: str, port: int = PGBOUNCER_PORT) -> Iterator[str]:
    """A pgbouncer (pool_mode=transaction, trust) on 127.0.0.1:`port` in front of the server of
    `server_url`: yields a function-free URL template, server_url with host and port replaced."""
    program = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer"
                                             if os.path.exists("/usr/sbin/pgbouncer") else None)
    if program is None:
        missing("pgbouncer", "Debian package pgbouncer")
    target = normalise_url(server_url)
    folder = Path(tempfile.mkdtemp(prefix="recon-pgbouncer-"))
    _as_postgres(folder)
    users = folder / "users.txt"
    users.write_text(f'"{target.username or "postgres"}" ""\n')
    log = folder / "pgbouncer.log"
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={target.host or '127.0.0.1'} port={target.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users}\n"
        "pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 20\n"
        f"logfile = {log}\npidfile = {folder / 'pgbouncer.pid'}\n")
    for path in (users, ini):
        _as_postgres(path)
    command = [program, str(ini)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]  # pgbouncer refuses to run as root
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, log)
        yield target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def through(url: str, proxy_url: str) -> str:
    """`url`'s database and user, reached through the proxy/pooler at `proxy_url`."""
    proxy = normalise_url(proxy_url)
    return normalise_url(url).set(host=proxy.host, port=proxy.port).render_as_string(
        hide_password=False)


class Cluster:
    """A private PostgreSQL cluster (pg_createcluster), trust authentication on 127.0.0.1."""

    def __init__(self, port: int = CLUSTER_PORT) -> None:
        if shutil.which("pg_createcluster") is None:
            missing("pg_createcluster", "Debian package postgresql-common")
        self.version = sorted(os.listdir("/usr/lib/postgresql"))[-1]
        self.name = f"recon_i11a_{os.getpid()}"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        subprocess.run(["pg_createcluster", self.version, self.name, "--port", str(port),
                        "--start", "--", "--auth=trust"], check=True, capture_output=True)

    def ctl(self, action: str) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name,
                        action, "-m", "fast"] if action != "start" else
                       ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name,
                        action], check=True, capture_output=True)

    def sql(self, statement: str, database: str = "postgres") -> list:
        engine = sa.create_engine(normalise_url(self.url).set(database=database),
                                  isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                result = connection.exec_driver_sql(statement)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def drop(self) -> None:
        subprocess.run(["pg_dropcluster", "--stop", self.version, self.name],
                       capture_output=True)


class CommitCutter:
    """A TCP proxy in front of PostgreSQL that loses the connection of the run's write
    transaction at its COMMIT, once: `forward=True` hands the COMMIT to the server and cuts the
    client off before the answer (committed, and the client cannot know); `forward=False` cuts
    both sides before the server sees it (not committed). Every other connection passes.

    The write transaction is the one that closes the run (`UPDATE recon_runs SET ended_at`);
    the URL it gives disables TLS so that the proxy can read the messages.
    """

    FINISH = b"UPDATE recon_runs SET ended_at"

    def __init__(self, server_url: str, *, forward: bool) -> None:
        import threading

        self.target = normalise_url(server_url)
        self.forward = forward
        self.cut = threading.Event()  # set once the COMMIT was cut
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, url: str) -> str:
        return normalise_url(url).set(host="127.0.0.1", port=self.port).update_query_dict(
            {"sslmode": "disable", "gssencmode": "disable"}).render_as_string(
            hide_password=False)

    def close(self) -> None:
        self._listener.close()
        _cut(*self._sockets)

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection((self.target.host or "127.0.0.1",
                                               self.target.port or 5432))
            self._sockets += [client, server]
            answer_dropped = threading.Event()
            threading.Thread(target=self._to_server, args=(client, server, answer_dropped),
                             daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client, answer_dropped),
                             daemon=True).start()

    def _to_server(self, client, server, answer_dropped) -> None:
        buffer, started, armed = b"", False, False
        try:
            while data := client.recv(65536):
                buffer += data
                out = b""
                while True:  # whole messages only: startup (no type byte), then typed ones
                    head = 4 if not started else 5
                    if len(buffer) < head:
                        break
                    length = int.from_bytes(buffer[head - 4:head], "big") + (head - 4)
                    if len(buffer) < length:
                        break
                    message, buffer = buffer[:length], buffer[length:]
                    started = True
                    if message[:1] == b"Q" and self.FINISH in message:
                        armed = True
                    elif (message[:1] == b"Q" and armed and not self.cut.is_set()
                          and message[5:].lstrip().upper().startswith(b"COMMIT")):
                        server.sendall(out)
                        out = b""
                        if self.forward:
                            answer_dropped.set()
                            server.sendall(message)
                        else:
                            self.cut.set()
                            _cut(client, server)
                            return
                        continue
                    out += message
                server.sendall(out)
        except OSError:
            pass
        finally:
            _cut(client, server)

    def _to_client(self, server, client, answer_dropped) -> None:
        try:
            while data := server.recv(65536):
                if answer_dropped.is_set():  # the COMMIT's answer: the client never gets it
                    self.cut.set()
                    _cut(client, server)
                    return
                client.sendall(data)
        except OSError:
            pass


def _cut(*sockets: socket.socket) -> None:
    """End the connections now (a bare close() does not while another thread reads them)."""
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
