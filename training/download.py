"""Resumable, checked download of the Microsoft PetImages archive, and its safe extraction.

Bytes go to ``<name>.part`` and are resumed with an HTTP Range request after an interruption
(also across runs); the file takes its final name only once its size, and the sha256 when one
is given, have been checked, so a file under the final name has passed those checks. No sha256
of the PetImages archive is pinned (the project has no trustworthy source for one): by default
only its exact size is checked; ``--sha256`` (``make download SHA256=<hex>``) checks the content too.
"""

from __future__ import annotations

import hashlib
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
from tqdm import tqdm

PETIMAGES_URL = "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
PETIMAGES_BYTES = 824_887_076
_CHUNK = 1 << 20
# A dropped connection loses the chunk being read (urllib3 discards a short read), so network
# reads are small enough that little is fetched twice on resume.
NETWORK_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """The download failed or its content does not match what was expected; the message says what to do."""


@dataclass(frozen=True)
class Expected:
    size: int | None = None
    sha256: str | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, expected: Expected) -> None:
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        raise DownloadError(f"{path}: size {size:,} bytes, expected {expected.size:,}")
    if expected.sha256:
        actual = file_sha256(path)
        if actual != expected.sha256.lower():
            raise DownloadError(
                f"{path}: sha256 {actual} does not match the expected {expected.sha256.lower()}"
            )


def _transfer(url: str, part: Path, expected: Expected, timeout: float, progress: bool) -> None:
    """One HTTP request, appending to ``part`` from its current size. Raises on any failure."""
    offset = part.stat().st_size if part.exists() else 0
    if expected.size is not None and offset > expected.size:
        part.unlink()  # longer than the whole file: not a prefix of it
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416 and offset:
            # Nothing left to send: the part is complete (size is checked by the caller).
            return
        if response.status_code == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise DownloadError(
                    f"server answered a Range request with {response.headers.get('Content-Range')!r}"
                )
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        elif response.status_code == 200:
            # The server ignored the Range header: start over rather than append a second copy.
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
            mode = "wb"
        else:
            raise DownloadError(f"GET {url} failed: HTTP {response.status_code} {response.reason}")
        if expected.size is not None and total is not None and total != expected.size:
            raise DownloadError(
                f"server reports {total:,} bytes, expected {expected.size:,}; is the URL right?"
            )
        with (
            part.open(mode) as out,
            tqdm(
                total=expected.size or total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            for chunk in response.iter_content(NETWORK_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise requests.ConnectionError(f"connection closed at {part.stat().st_size:,} of {total:,} bytes")


def download(
    url: str,
    dest_dir: Path,
    *,
    expected_bytes: int | None = None,
    sha256: str | None = None,
    filename: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 2.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` into ``dest_dir`` (resuming a previous ``.part``) and verify it.

    Returns the final path. Raises :class:`DownloadError` when the server fails repeatedly or
    the content does not match; a mismatching ``.part`` is deleted so the next run starts clean.
    """
    name = filename or Path(unquote(urlparse(url).path)).name or "download"
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    part = dest_dir / f"{name}.part"
    expected = Expected(expected_bytes, sha256)
    if final.exists():
        try:
            _verify(final, expected)
        except DownloadError as exc:
            raise DownloadError(f"{exc}. Delete {final} to download it again.") from None
        return final

    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            _transfer(url, part, expected, timeout, progress)
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last_error = exc
            if attempt < retries:
                time.sleep(backoff * attempt)
        except requests.RequestException as exc:
            raise DownloadError(f"GET {url} failed: {exc}") from exc
    else:
        have = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"GET {url} failed after {retries} attempts ({last_error}); {have:,} bytes kept in {part}, "
            "run the command again to resume"
        )

    try:
        _verify(part, expected)
    except DownloadError as exc:
        part.unlink()
        raise DownloadError(f"{exc}; the partial file was deleted, run the command again to retry") from None
    part.replace(final)
    return final


def extract_zip(archive: Path, dest_dir: Path, *, progress: bool = True) -> Path:
    """Extract ``archive`` into ``dest_dir`` once; members escaping ``dest_dir`` are refused.

    A marker file records a finished extraction, so an interrupted one is simply redone.
    """
    dest_dir = Path(dest_dir)
    marker = dest_dir / f".extracted-{archive.name}"
    stamp = f"{archive.stat().st_size}\n"
    if marker.is_file() and marker.read_text() == stamp:
        return dest_dir
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = dest_dir.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                target = (root / info.filename).resolve()
                if not target.is_relative_to(root):
                    raise DownloadError(
                        f"{archive}: member {info.filename!r} would extract outside {dest_dir}"
                    )
            for info in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress):
                zf.extract(info, root)
    except zipfile.BadZipFile as exc:
        raise DownloadError(
            f"{archive} is not a valid zip archive ({exc}); delete it and download again"
        ) from exc
    marker.write_text(stamp)
    return dest_dir
