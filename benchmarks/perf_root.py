"""NVIDIA's perf_analyzer in a Debian trixie root filesystem, built once and cached under build/.

    python -m benchmarks.perf_root build     # build (or reuse) the root filesystem
    python -m benchmarks.perf_root status    # where it is and which perf_analyzer it holds

Why a root filesystem: the perf-analyzer wheels (2.5x/2.60) are tagged manylinux_2_38 and need
glibc >= 2.38; Debian bookworm has 2.36. ``mmdebstrap`` makes a minimal trixie tree (glibc 2.41) from
Debian's own packages, the pinned wheel goes into a venv inside it, and ``chroot`` runs the tool.
A chroot shares the host's network, so perf_analyzer reaches the host's Triton on loopback.

The tree lives in ``build/perf-analyzer/root-<fingerprint>``: the fingerprint hashes every input
(suite, variant, packages, the pinned requirements file), so changing one builds a new tree and the
stale one is removed. Building happens in a ``.partial`` directory renamed only when complete, under a
lock, so an interrupted or concurrent build never leaves a half tree that looks ready.

Running: /proc (and the host folder holding the input JSON and the CSVs) are bind-mounted inside a
private mount namespace (``unshare --mount``): the kernel drops those mounts when perf_analyzer exits,
however it exits, so nothing stays mounted on the host. A ``finally`` checks that anyway.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from contract.paths import PROJECT_ROOT

CACHE_DIR = PROJECT_ROOT / "build" / "perf-analyzer"
REQUIREMENTS = Path(__file__).with_name("perf-analyzer-requirements.txt")
SUITE = "trixie"
VARIANT = "minbase"
# python3-venv for the wheel's venv, ca-certificates for pip's TLS, libgomp1 for perf_analyzer itself.
PACKAGES = ("python3", "python3-venv", "ca-certificates", "libgomp1")
VENV = "/pa"
# The wheel's console script (VENV/bin/perf_analyzer) runs this binary through subprocess.run and drops
# its exit status (2.60.0: an unknown model exits 0); the binary itself is run, so failures are seen.
BINARY_GLOB = "lib/python3*/site-packages/perf_analyzer/bin/perf_analyzer"
# Where the host folder (input JSON in, CSVs out) appears inside the root.
WORK_MOUNT = "/mnt"
# The host's CA bundle, copied in: pip inside must trust what the host's pip trusts (e.g. a TLS proxy).
CA_INSIDE = "/etc/ssl/certs/host-ca-bundle.crt"
READY = ".ready.json"


class PerfRootError(RuntimeError):
    """A one-line, user-facing reason perf_analyzer cannot be built or run here."""


@dataclass(frozen=True)
class RootSpec:
    suite: str = SUITE
    variant: str = VARIANT
    packages: tuple[str, ...] = PACKAGES
    requirements: str = ""

    @classmethod
    def default(cls) -> RootSpec:
        return cls(requirements=REQUIREMENTS.read_text())

    def fingerprint(self) -> str:
        text = json.dumps([self.suite, self.variant, sorted(self.packages), self.requirements])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def root_path(spec: RootSpec, cache: Path = CACHE_DIR) -> Path:
    return cache / f"root-{spec.fingerprint()}"


def binary(root: Path) -> str | None:
    """perf_analyzer's path inside ``root`` (None before it is installed)."""
    found = sorted((root / VENV.lstrip("/")).glob(BINARY_GLOB))
    return "/" + str(found[-1].relative_to(root)) if found else None


def is_ready(root: Path) -> bool:
    return (root / READY).is_file() and binary(root) is not None


def require_root_user(what: str) -> None:
    if os.geteuid() != 0:
        raise PerfRootError(f"{what} needs root (chroot and mount); run it as root")


# --- pip's configuration, carried into the root -------------------------------------------------


def _host_only(value: str) -> bool:
    """A file path or file:// URL names something on the host that does not exist inside the root."""
    return value.startswith(("/", "file:", "~", "."))


def _host_pip_config() -> dict[str, str]:
    """``pip config list`` of the host (files only), as ``key -> value`` with the section dropped."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        section, _, name = key.partition(".")
        try:
            words = shlex.split(raw)
        except ValueError:  # a value spread over lines: not forwarded rather than forwarded wrong
            continue
        # `global` first, `install` overrides it, as pip itself reads them.
        if section in {"global", "install"} and (section == "install" or name not in found):
            found[name] = " ".join(words)
    return found


def pip_environment(host_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment pip runs with inside the root: the host's index/proxy settings, no host paths.

    Host files (find-links folders, file:// indexes) cannot be seen from inside and are dropped;
    remote indexes, trusted hosts, timeouts and proxies are kept, from the host's pip config files
    and its ``PIP_*`` / ``*_PROXY`` environment (the environment wins, as with pip itself).
    """
    env = dict(os.environ if host_env is None else host_env)
    settings: dict[str, str] = {}
    for name, value in _host_pip_config().items():
        settings[f"PIP_{name.upper().replace('-', '_')}"] = value
    settings.update({k: v for k, v in env.items() if k.startswith("PIP_")})
    inside = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    for key, value in settings.items():
        if key in {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_CONFIG_FILE", "PIP_REQUIRE_VIRTUALENV"}:
            continue
        kept = [v for v in value.split() if not _host_only(v)]
        if kept:
            inside[key] = " ".join(kept)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if env.get(key):
            inside[key] = env[key]
    inside["PIP_CERT"] = CA_INSIDE
    inside["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return inside


def host_ca_bundle(host_env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if host_env is None else host_env
    candidates = [env.get("PIP_CERT"), _host_pip_config().get("cert"), env.get("SSL_CERT_FILE")]
    for candidate in [*candidates, "/etc/ssl/certs/ca-certificates.crt"]:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise PerfRootError(
        "no CA bundle on the host (/etc/ssl/certs/ca-certificates.crt): apt-get install ca-certificates"
    )


# --- build -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _step(cmd: Sequence[str], what: str, *, env: Mapping[str, str] | None = None, quiet: bool) -> None:
    result = subprocess.run(
        list(cmd), env=dict(env) if env is not None else None, text=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None,
    )  # fmt: skip
    if result.returncode != 0:
        tail = (result.stdout or "").strip().splitlines()[-1:] if quiet else []
        raise PerfRootError(f"{what} failed (exit {result.returncode})" + (f": {tail[0]}" if tail else ""))


def _installed_version(root: Path) -> str:
    meta = sorted((root / VENV.lstrip("/")).glob("lib/python3*/site-packages/perf_analyzer-*.dist-info"))
    return meta[-1].name.removeprefix("perf_analyzer-").removesuffix(".dist-info") if meta else "unknown"


def ensure_root(
    spec: RootSpec | None = None,
    cache: Path = CACHE_DIR,
    *,
    say: Callable[[str], object] = print,
    quiet: bool = False,
) -> Path:
    """The ready root filesystem for ``spec``: reused when its fingerprint matches, else built."""
    spec = spec or RootSpec.default()
    require_root_user("perf_analyzer's root filesystem")
    root = root_path(spec, cache)
    if is_ready(root):
        return root
    if shutil.which("mmdebstrap") is None:
        raise PerfRootError("mmdebstrap is not installed (Debian package): apt-get install -y mmdebstrap")
    with _locked(cache):
        if is_ready(root):  # built by a concurrent run while this one waited
            return root
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        say(f"building perf_analyzer's root filesystem ({spec.suite}, {' '.join(spec.packages)}) → {root}")
        _step(
            ["mmdebstrap", "--quiet", f"--variant={spec.variant}", f"--include={','.join(spec.packages)}",
             spec.suite, str(partial)],
            "mmdebstrap", quiet=quiet,
        )  # fmt: skip
        shutil.copyfile(host_ca_bundle(), partial / CA_INSIDE.lstrip("/"))
        (partial / "tmp" / "requirements.txt").write_text(spec.requirements)
        env = pip_environment()
        inside = ["chroot", str(partial)]
        _step([*inside, "python3", "-m", "venv", VENV], "python3 -m venv (in the root)", env=env, quiet=quiet)
        _step(
            [*inside, f"{VENV}/bin/pip", "install", "--no-input", "-r", "/tmp/requirements.txt"],
            "pip install perf-analyzer (in the root)", env=env, quiet=quiet,
        )  # fmt: skip
        (partial / "tmp" / "requirements.txt").unlink()
        if binary(partial) is None:
            raise PerfRootError(
                f"the perf-analyzer wheel installed no {VENV}/{BINARY_GLOB} (pin or architecture?)"
            )
        facts = {
            "fingerprint": spec.fingerprint(),
            "perf_analyzer": _installed_version(partial),
            **vars(spec),
        }
        (partial / READY).write_text(json.dumps(facts, indent=2))
        partial.rename(root)
        for stale in cache.glob("root-*"):
            if stale != root:
                shutil.rmtree(stale, ignore_errors=True)
        say(f"perf_analyzer {facts['perf_analyzer']} ready in {root}")
    return root


# --- run -------------------------------------------------------------------------------------------


def _unmount_leftovers(root: Path) -> None:
    """Mounts live in perf_analyzer's private namespace; this only guards against a host-visible one."""
    for point in (root / "proc", root / WORK_MOUNT.lstrip("/")):
        if os.path.ismount(point):
            subprocess.run(["umount", "--lazy", str(point)], check=False)


def perf_analyzer_command(root: Path, work_dir: Path, args: Sequence[str]) -> list[str]:
    """``unshare`` → bind /proc and ``work_dir`` (at /mnt) → ``chroot`` → perf_analyzer ``args``."""
    script = (
        'set -e; mount --bind /proc "$1/proc"; mount --bind "$2" "$1$3"; root=$1; shift 3; '
        'exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"'
    )
    return [
        "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "perf-root",
        str(root), str(work_dir), WORK_MOUNT, binary(root) or "perf_analyzer", *args,
    ]  # fmt: skip


def run_perf_analyzer(
    root: Path, work_dir: Path, args: Sequence[str], *, timeout_s: float, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run perf_analyzer in ``root`` with ``work_dir`` seen as /mnt; its output is returned (and shown).

    Paths in ``args`` that should reach ``work_dir`` must be written as ``/mnt/<name>``.
    """
    require_root_user("running perf_analyzer")
    if not is_ready(root):
        raise PerfRootError(
            f"no perf_analyzer root filesystem at {root}: run `python -m benchmarks.perf_root build`"
        )
    try:
        result = subprocess.run(
            perf_analyzer_command(root, work_dir.resolve(), args),
            capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise PerfRootError(f"perf_analyzer ran past {timeout_s:.0f} s and was stopped") from exc
    finally:
        _unmount_leftovers(root)
    if not quiet:
        sys.stderr.write(result.stdout)
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.lower().startswith(("error", "failed"))] or lines[-1:]
        raise PerfRootError(
            f"perf_analyzer failed (exit {result.returncode}): {' / '.join(errors) or 'no output'}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf_root",
        description="Build (or reuse) the Debian trixie root filesystem that runs NVIDIA's perf_analyzer.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Needs root and the Debian package mmdebstrap (apt-get install -y mmdebstrap).",
    )
    parser.add_argument("action", choices=["build", "status"], help="build/reuse it, or report where it is")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="folder holding the root filesystem")
    args = parser.parse_args(argv)
    spec = RootSpec.default()
    root = root_path(spec, args.cache)
    if args.action == "status":
        if not is_ready(root):
            print(
                f"not built: {root} (inputs {spec.fingerprint()}); run `python -m benchmarks.perf_root build`"
            )
            return 1
        print(f"{root}: perf_analyzer {json.loads((root / READY).read_text())['perf_analyzer']}")
        return 0
    try:
        ensure_root(spec, args.cache)
    except PerfRootError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
