"""A local clickhouse-server process (Debian's package) on free ports, in a folder of its own.

Development, CI and the torture bench only: production runs the server of docker-compose.yml.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><console>0</console></logger>
  <tcp_port>{tcp}</tcp_port>
  <http_port>{http}</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <timezone>UTC</timezone>
</yandex>
"""
CLICKHOUSE_USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"""


@dataclass
class ClickHouseServer:
    """A clickhouse-server process (Debian's package) on free ports, in its own folder."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("clickhouse-server") or shutil.which("clickhouse")

    def url(self, database: str) -> str:
        return f"clickhouse://default:@127.0.0.1:{self.port}/{database}"

    def start(self) -> "ClickHouseServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "config.xml").write_text(CLICKHOUSE_CONFIG.format(d=self.workdir, tcp=self.port, http=free_port()))
        (self.workdir / "users.xml").write_text(CLICKHOUSE_USERS)
        binary = self.binary()
        if not binary:
            raise RuntimeError("clickhouse-server is not installed: apt-get install clickhouse-server "
                               "(./run test and ./run bench install it)")
        cmd = [binary, f"--config-file={self.workdir / 'config.xml'}"]
        if binary.endswith("/clickhouse"):
            cmd.insert(1, "server")
        self.proc = subprocess.Popen(cmd, stdout=open(self.workdir / "stdout.log", "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"clickhouse-server did not start on {self.port}; see {self.workdir / 'stdout.log'}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
