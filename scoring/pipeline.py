"""Decode in a process pool, infer over Triton gRPC aio with several batches in flight.

Decoding is the CPU-heavy half, so it runs in worker processes while the event loop keeps
``in_flight`` batches queued at Triton, where dynamic batching and the model instances do the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.model_info import ModelInfo
from imaging import DecodeLimits, ImageError, load_for_model
from scoring.output import ErrorLog, ResultWriter, ScoredImage
from scoring.triton_model import TritonModel

INFER_ATTEMPTS = 3


@dataclass
class RunSummary:
    total: int = 0
    scored: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DecodedChunk:
    paths: list[str]
    sha256s: list[str]
    pixels: np.ndarray | None  # uint8 [n, S, S, 3] for paths that decoded; None if none did
    skipped: int
    errors: list[tuple[str, str, str]]  # (path, kind, detail)


# Set once per worker process by the pool initializer, so the (possibly large) done-set
# crosses the process boundary once, not with every chunk.
_worker_state: dict[str, object] = {}


def _init_worker(image_size: int, done: frozenset[tuple[str, str]], limits: DecodeLimits) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the run and reports, the decoders
    # finish their chunk quietly instead of each printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_state.update(image_size=image_size, done=done, limits=limits)


def decode_chunk(paths: Sequence[str]) -> DecodedChunk:
    size = int(_worker_state["image_size"])  # type: ignore[call-overload]
    done: frozenset[tuple[str, str]] = _worker_state["done"]  # type: ignore[assignment]
    limits: DecodeLimits = _worker_state["limits"]  # type: ignore[assignment]
    ok_paths, shas, arrays, errors, skipped = [], [], [], [], 0
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            errors.append((path, "unreadable", exc.strerror or type(exc).__name__))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if (path, sha) in done:
            skipped += 1
            continue
        try:
            arrays.append(load_for_model(data, size, limits=limits))
        except ImageError as exc:
            errors.append((path, exc.kind, exc.detail))
            continue
        ok_paths.append(path)
        shas.append(sha)
    pixels = np.stack(arrays) if arrays else None
    return DecodedChunk(ok_paths, shas, pixels, skipped, errors)


class TritonUnavailableError(RuntimeError):
    pass


async def score_files(
    paths: Sequence[Path],
    *,
    model: TritonModel,
    info: ModelInfo,
    writer: ResultWriter,
    errors: ErrorLog,
    batch_size: int,
    in_flight: int,
    workers: int,
    limits: DecodeLimits,
    on_progress: Callable[[int], None] = lambda n: None,
) -> RunSummary:
    summary = RunSummary(total=len(paths))
    done = frozenset(writer.done())
    chunks = [[str(p) for p in paths[i : i + batch_size]] for i in range(0, len(paths), batch_size)]
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(in_flight)
    inferences: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    async def infer_and_write(chunk: DecodedChunk) -> None:
        try:
            assert chunk.pixels is not None
            probs, version = await _infer_with_retries(model, chunk.pixels)
            writer.append(
                [
                    ScoredImage(
                        path=path,
                        sha256=sha,
                        predicted_class=info.class_names[int(np.argmax(p))],
                        confidence=float(np.max(p)),
                        probabilities=tuple(float(x) for x in p),
                        model_version=version,
                    )
                    for path, sha, p in zip(chunk.paths, chunk.sha256s, probs, strict=True)
                ]
            )
            summary.scored += len(chunk.paths)
            on_progress(len(chunk.paths))
        except BaseException as exc:
            failure.append(exc)
        finally:
            slots.release()

    def account(chunk: DecodedChunk) -> None:
        summary.skipped += chunk.skipped
        for path, kind, detail in chunk.errors:
            errors.add(path, kind, detail)
            summary.failures[kind] = summary.failures.get(kind, 0) + 1
        summary.failed += len(chunk.errors)
        on_progress(chunk.skipped + len(chunk.errors))

    start = loop.time()
    # Not fork: by now the gRPC channel to Triton has threads, and forking under them makes gRPC
    # print "skipping fork() handlers" across the progress bar (and is unsafe besides). The
    # forkserver starts clean, by exec, and forks the decoders from there.
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(info.image_size, done, limits),
    ) as pool:
        pending: deque[asyncio.Future[DecodedChunk]] = deque()
        next_chunk = 0
        # Keep every worker busy plus one chunk each in reserve; more would only hold memory.
        while next_chunk < len(chunks) or pending:
            while next_chunk < len(chunks) and len(pending) < 2 * workers:
                pending.append(loop.run_in_executor(pool, decode_chunk, chunks[next_chunk]))
                next_chunk += 1
            chunk = await pending.popleft()
            account(chunk)
            if failure:
                break
            if chunk.pixels is not None:
                await slots.acquire()
                task = asyncio.create_task(infer_and_write(chunk))
                inferences.add(task)
                task.add_done_callback(inferences.discard)
        if inferences:
            await asyncio.gather(*inferences)
        for leftover in pending:
            leftover.cancel()
    summary.seconds = loop.time() - start
    if failure:
        raise failure[0]
    return summary


async def _infer_with_retries(model: TritonModel, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    delay = 0.5
    for attempt in range(1, INFER_ATTEMPTS + 1):
        try:
            return await model.infer(pixels)
        except TritonUnavailableError:
            raise
        except Exception as exc:
            if attempt == INFER_ATTEMPTS:
                raise TritonUnavailableError(
                    f"inference failed {INFER_ATTEMPTS} times ({exc}); results so far are saved, "
                    "rerun the same command to resume"
                ) from exc
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
