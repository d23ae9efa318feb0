"""A throwaway PostgreSQL cluster from the Debian ``postgresql`` package: tests and the replica topology.

``initdb`` + ``pg_ctl`` in a temp directory, on 127.0.0.1 and a given port, with password
(scram-sha-256) authentication. PostgreSQL refuses to run as root, so as root the server runs as
the unprivileged ``postgres`` user the package creates (``runuser``). Nothing is installed or
registered system-wide; ``stop()`` removes the directory.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")


def pg_bin() -> Path:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    candidates = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise FileNotFoundError(
            f"no PostgreSQL server under {PG_ROOT}: install Debian's package (`apt-get install postgresql`)"
        )
    return candidates[-1]


@dataclass
class PostgresCluster:
    port: int
    user: str = "cd"
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    root: Path | None = None
    run_as: str | None = None  # OS user for the server; default: "postgres" when we are root

    def _cmd(self, *args: str) -> list[str]:
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--", *args]
        return list(args)

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 60.0) -> PostgresCluster:
        binary = pg_bin()
        if self.run_as is None and os.geteuid() == 0:
            self.run_as = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="cd-postgres-"))
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            account = pwd.getpwnam(self.run_as)
            for path in (self.root, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        subprocess.run(
            self._cmd(
                str(binary / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            ),
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )
        pwfile.unlink()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
            "-c max_connections=100 -c shared_buffers=32MB"
        )
        started = subprocess.run(
            self._cmd(
                str(binary / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(timeout_s)),
                "start",
            ),
            capture_output=True,
            text=True,
            timeout=timeout_s + 5,
        )
        if started.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()}\n{tail}")
        return self

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._cmd(str(pg_bin() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"),
                capture_output=True,
                timeout=timeout_s,
            )
        for _ in range(50):  # the server's own files are removed once it has exited
            if not (self.data / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
