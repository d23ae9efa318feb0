"""The PetImages downloader against a real HTTP server on loopback, with Range support."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from training.data import main
from training.download import NETWORK_CHUNK, DownloadError, download, extract_zip

PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Behaviour:
    """What the test server does; tests change it between requests."""

    payload: bytes = PAYLOAD
    honour_range: bool = True
    cut_after: list[int] = field(default_factory=list)  # per request: bytes sent before hanging up
    status: int = 200
    send_length: bool = True
    ranges: list[str | None] = field(default_factory=list)  # Range header of each request


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        b = self.behaviour
        header = self.headers.get("Range")
        b.ranges.append(header)
        if b.status != 200:
            self.send_error(b.status)
            return
        start = 0
        if header and b.honour_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(b.payload):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(b.payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(b.payload) - 1}/{len(b.payload)}")
        else:
            self.send_response(200)
        body = b.payload[start:]
        if b.send_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True  # length known only from the connection closing
        self.send_header("Content-Type", "application/zip")
        self.end_headers()
        if b.cut_after:
            # A dropped connection: promise the whole body, deliver part of it, hang up.
            self.wfile.write(body[: b.cut_after.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    handler = type("Handler", (_Handler,), {"behaviour": behaviour})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/files/kagglecatsanddogs_test.zip", behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()


def _get(url: str, dest: Path, **kwargs: object) -> Path:
    options: dict[str, object] = {"expected_bytes": len(PAYLOAD), "progress": False, "backoff": 0.0}
    options.update(kwargs)
    return download(url, dest, **options)  # type: ignore[arg-type]


def test_full_download_is_verified_and_named(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    path = _get(url, tmp_path, sha256=SHA.upper())
    assert path == tmp_path / "kagglecatsanddogs_test.zip"
    assert path.read_bytes() == PAYLOAD
    assert not list(tmp_path.glob("*.part"))
    assert behaviour.ranges == [None]


def test_interrupted_transfer_resumes_with_range(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    # Two drops, then the rest. A short read loses at most the chunk in flight, so drops on
    # chunk boundaries resume exactly where they happened.
    behaviour.cut_after = [2 * NETWORK_CHUNK, NETWORK_CHUNK + 5000]
    path = _get(url, tmp_path, sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.ranges == [None, f"bytes={2 * NETWORK_CHUNK}-", f"bytes={3 * NETWORK_CHUNK}-"]


def test_resume_across_runs_from_a_part_file(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    (tmp_path / "kagglecatsanddogs_test.zip.part").write_bytes(PAYLOAD[:123_456])
    path = _get(url, tmp_path, sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.ranges == ["bytes=123456-"]


def test_complete_part_file_gets_416_and_is_verified(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    (tmp_path / "kagglecatsanddogs_test.zip.part").write_bytes(PAYLOAD)
    assert _get(url, tmp_path, sha256=SHA).read_bytes() == PAYLOAD
    assert behaviour.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.honour_range = False
    (tmp_path / "kagglecatsanddogs_test.zip.part").write_bytes(PAYLOAD[:1000])
    assert _get(url, tmp_path, sha256=SHA).read_bytes() == PAYLOAD  # not 1000 bytes + a full copy


def test_verified_final_file_is_not_downloaded_again(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    _get(url, tmp_path, sha256=SHA)
    _get(url, tmp_path, sha256=SHA)
    assert behaviour.ranges == [None]


def test_checksum_mismatch_deletes_the_part(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match=r"sha256 .* does not match") as exc:
        _get(url, tmp_path, sha256="0" * 64)
    assert "run the command again" in str(exc.value)
    assert not list(tmp_path.iterdir())


def test_size_mismatch_reported_by_the_server(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match=r"server reports 300,000 bytes, expected 824,887,076"):
        _get(url, tmp_path, expected_bytes=824_887_076)
    assert not (tmp_path / "kagglecatsanddogs_test.zip").exists()


def test_size_mismatch_found_after_transfer(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.send_length = False  # the client learns the size only by receiving it
    with pytest.raises(DownloadError, match=r"size 300,000 bytes, expected 300,001"):
        _get(url, tmp_path, expected_bytes=len(PAYLOAD) + 1)
    assert not list(tmp_path.iterdir())


def test_corrupt_final_file_is_not_trusted(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, _ = server
    (tmp_path / "kagglecatsanddogs_test.zip").write_bytes(PAYLOAD[:10])
    with pytest.raises(DownloadError, match=r"Delete .* to download it again"):
        _get(url, tmp_path)


def test_http_error(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.status = 404
    with pytest.raises(DownloadError, match="HTTP 404"):
        _get(url, tmp_path)


def test_gives_up_after_retries_but_keeps_progress(tmp_path: Path, server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.cut_after = [NETWORK_CHUNK, NETWORK_CHUNK]
    with pytest.raises(DownloadError, match=r"after 2 attempts.*run the command again to resume"):
        _get(url, tmp_path, retries=2)
    assert (tmp_path / "kagglecatsanddogs_test.zip.part").read_bytes() == PAYLOAD[: 2 * NETWORK_CHUNK]
    assert _get(url, tmp_path).read_bytes() == PAYLOAD  # the next run resumes


def test_unreachable_server(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="after 1 attempts"):
        _get("http://127.0.0.1:9/none.zip", tmp_path, retries=1, timeout=2.0)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_cli_downloads_extracts_and_ingests(
    tmp_path: Path,
    server: tuple[str, Behaviour],
    photo: Callable[..., bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, behaviour = server
    make = photo
    members = {f"PetImages/Cat/{i}.jpg": make(seed=i) for i in range(3)}
    members |= {f"PetImages/Dog/{i}.jpg": make(seed=10 + i) for i in range(3)}
    members["PetImages/Dog/666.jpg"] = b""  # the real archive has zero-byte files too
    members["readme[1].txt"] = b"licence"
    behaviour.payload = _zip(members)
    dest, raw = tmp_path / "downloads", tmp_path / "raw"
    # data/raw already holds the synthetic set: that must not pass for a finished download.
    (raw / "synthetic" / "cat").mkdir(parents=True)
    (raw / "synthetic" / "cat" / "cat_00000.png").write_bytes(make(seed=50))
    common = ["--url", url, "--dest", str(dest), "--extract-to", str(raw)]
    size = str(len(behaviour.payload))
    assert main(["--quiet", "download", *common, "--expected-bytes", size]) == 0
    assert f"checked: size {int(size):,} bytes\n" in capsys.readouterr().out  # what was checked, no more
    assert (raw / "PetImages/Cat/0.jpg").read_bytes() == members["PetImages/Cat/0.jpg"]
    sha = hashlib.sha256(behaviour.payload).hexdigest()
    assert (
        main(["--quiet", "download", *common, "--expected-bytes", size, "--sha256", sha]) == 0
    )  # not fetched
    assert f"checked: size {int(size):,} bytes, sha256\n" in capsys.readouterr().out
    assert len(behaviour.ranges) == 1

    manifest, rejects = tmp_path / "manifest.csv", tmp_path / "rejects.csv"
    outputs = ["--manifest", str(manifest), "--rejects", str(rejects)]
    assert main(["--quiet", "ingest", "--source", "download", *common, *outputs]) == 0
    out = capsys.readouterr().out
    assert "layout: PetImages; accepted 6 images, rejected 1" in out
    assert len(behaviour.ranges) == 1  # ingest found the extraction and did not download again


def test_ingest_from_download_fetches_when_missing(
    tmp_path: Path,
    server: tuple[str, Behaviour],
    photo: Callable[..., bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, behaviour = server
    make = photo
    members = {
        f"PetImages/{c}/{i}.jpg": make(seed=i + 10 * (c == "Dog")) for c in ("Cat", "Dog") for i in range(2)
    }
    behaviour.payload = _zip(members)
    raw = tmp_path / "raw"
    (raw / "synthetic" / "dog").mkdir(parents=True)
    args = ["--quiet", "ingest", "--source", "download", "--url", url, "--dest", str(tmp_path / "dl")]
    args += [
        "--extract-to",
        str(raw),
        "--manifest",
        str(tmp_path / "m.csv"),
        "--rejects",
        str(tmp_path / "r.csv"),
    ]
    assert main(args) == 0
    assert behaviour.ranges == [None]
    assert "accepted 4 images, rejected 0" in capsys.readouterr().out


def test_cli_download_error_exits_non_zero(
    tmp_path: Path, server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = server
    code = main(["--quiet", "download", "--url", url, "--dest", str(tmp_path), "--sha256", "ab" * 32])
    assert code == 1
    assert "error:" in capsys.readouterr().err


def test_extract_refuses_members_outside_the_target(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"ok.txt": b"x", "../../escape.txt": b"x"}))
    with pytest.raises(DownloadError, match="outside"):
        extract_zip(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out" / "ok.txt").exists()  # checked before anything is written


def test_extract_once_and_bad_zip(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"d/x.txt": b"1"}))
    out = extract_zip(archive, tmp_path / "out", progress=False)
    (out / "d/x.txt").write_bytes(b"edited")
    extract_zip(archive, tmp_path / "out", progress=False)  # marker: not extracted again
    assert (out / "d/x.txt").read_bytes() == b"edited"
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DownloadError, match="not a valid zip"):
        extract_zip(bad, tmp_path / "out2", progress=False)
