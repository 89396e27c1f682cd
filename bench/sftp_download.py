"""Benchmark: download a large file from a local OpenSSH sshd with the SftpServer block,
beside the OpenSSH ``sftp`` client fetching the same file in the same run.

    uv run python bench/sftp_download.py                 # 200 MB, best of 3
    uv run python bench/sftp_download.py --mb 50 --repeat 1

Needs root and openssh-server/openssh-client (as the tests do). Both clients log in by key to
the same server and write to the same local disk; the file is read once before the timings so
that the server finds it in the page cache. The runs alternate (block, client, block, client, ...)
so that both see the same load on a shared machine; the best of each is kept. Target (issue 4):
the block reaches at least 0.7x the client's throughput. Results go to ``bench/results/`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from blocks.sftp import RemoteFile, SftpServer  # noqa: E402
from sandbox.openssh import OpenSshServer  # noqa: E402

TARGET_RATIO = 0.7
RESULTS_DIR = PROJECT_DIR / "bench" / "results"


def _time_block(server: OpenSshServer, remote: RemoteFile, out: Path) -> float:
    block = SftpServer(
        host="127.0.0.1",
        port=server.port,
        username=server.user,
        private_key=server.client_key.read_text(),
        known_hosts=server.known_hosts,
    )
    started = time.perf_counter()
    with block.get_client() as sftp:
        downloaded = sftp.download(remote, out)
    elapsed = time.perf_counter() - started
    assert downloaded.size == remote.size, (downloaded.size, remote.size)
    downloaded.path.unlink()
    return elapsed


def _time_openssh(server: OpenSshServer, remote: RemoteFile, out: Path) -> float:
    known_hosts = server.dir / "bench_known_hosts"
    known_hosts.write_text(server.known_hosts)
    target = out / remote.name
    command = [
        "sftp", "-q", "-b", "-", "-P", str(server.port), "-i", str(server.client_key),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        f"{server.user}@127.0.0.1",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(
        command, input=f"get {remote.path} {target}\n", text=True, check=True, capture_output=True
    )
    elapsed = time.perf_counter() - started
    assert target.stat().st_size == remote.size
    target.unlink()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=200, help="file size in MB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per client; best is kept")
    args = parser.parse_args()
    size = args.mb * 1024 * 1024
    with OpenSshServer() as server, tempfile.TemporaryDirectory() as local:
        folder = server.folder("inbox")
        source = folder / "big.csv"
        with source.open("wb") as sink:
            for _ in range(args.mb):
                sink.write(os.urandom(1024 * 1024))
        source.read_bytes()  # into the page cache
        remote = RemoteFile(name="big.csv", path=str(source), size=size, mtime=0)
        block_runs: list[float] = []
        client_runs: list[float] = []
        for _ in range(args.repeat):
            block_runs.append(_time_block(server, remote, Path(local)))
            client_runs.append(_time_openssh(server, remote, Path(local)))
            print(f"run: block {block_runs[-1]:.2f} s, client {client_runs[-1]:.2f} s", flush=True)
    block_s, client_s = min(block_runs), min(client_runs)
    load = os.getloadavg()
    block_mbs, client_mbs = args.mb / block_s, args.mb / client_s
    ratio = block_mbs / client_mbs
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(f"file: {args.mb} MB, best of {args.repeat}")
    print(f"OpenSSH sftp client: {client_s:6.2f} s  {client_mbs:7.1f} MB/s")
    print(f"SftpServer block:    {block_s:6.2f} s  {block_mbs:7.1f} MB/s")
    print(f"block / client throughput: {ratio:.2f} (>= {TARGET_RATIO}) {verdict}")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"sftp_download-{args.mb}mb-{stamp}.json").write_text(
        json.dumps(
            {
                "mb": args.mb,
                "repeat": args.repeat,
                "client_s": client_s,
                "block_s": block_s,
                "client_mb_s": client_mbs,
                "block_mb_s": block_mbs,
                "ratio": ratio,
                "block_runs_s": block_runs,
                "client_runs_s": client_runs,
                "load_average": load,
                "target": TARGET_RATIO,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
