"""Transcription in its own process, so Whisper never takes the event loop (or a core) from forwarding.

The server side of transcribe/worker.py. Pushing a packet only appends to a list; every FLUSH_S the
pending packets go to the worker in one frame. Nothing here ever waits for the worker: if it falls
behind by more than MAX_BUFFERED bytes, new audio is dropped (counted) rather than queued without bound;
if it dies, the room goes on without captions while it is restarted and every open stream reopened.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import sys
import time
from dataclasses import dataclass, field

from transcribe import worker_protocol as wire
from transcribe.events import Caption
from transcribe.transcriber import CaptionSink
from transcribe.worker import WorkerOptions

log = logging.getLogger(__name__)

FLUSH_S = 0.02  # one frame per 20 ms for all speakers, not one per packet
MAX_BUFFERED = 1024 * 1024  # bytes the worker may lag behind before audio is dropped (~20 s of 12 speakers)
RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # after each crash in a row; reset by a healthy minute
HEALTHY_AFTER_S = 60.0
STARTUP_TIMEOUT_S = 300.0  # first start may resolve (and, online, download) the model
CLOSE_STREAM_TIMEOUT_S = 30.0
# On close, the worker has this long to finish the last captions (decodes not started by then are dropped),
# and KILL_AFTER_S more to exit before it is killed: together the server's default shutdown grace (5 s), so
# a SIGTERM under any caption backlog exits well within 10 s.
SHUTDOWN_GRACE_S = 4.0
KILL_AFTER_S = 1.0
STATS_EVERY_S = 5.0  # how fresh latest_stats() is (metrics scrapes read it without waiting for the worker)


class TranscriptionUnavailable(Exception):
    pass


@dataclass
class ProcessStream:
    """One speaker's stream; its captions come back to its own sinks."""

    owner: TranscriberProcess
    key: int
    speaker_id: str
    language: str | None
    english: bool
    on_caption: CaptionSink
    on_english: CaptionSink
    dominant: bool = False
    closing: bool = False
    closed: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def push_opus(self, payload: bytes, room_time: float) -> None:
        self.owner.queue_audio(self.key, payload, room_time)

    def set_language(self, language: str | None) -> None:
        self.language = language
        self.owner.send(wire.SetLanguage(key=self.key, language=language))

    def set_english(self, wanted: bool) -> None:
        if wanted != self.english:
            self.english = wanted
            self.owner.send(wire.SetEnglish(key=self.key, english=wanted))

    def set_dominant(self, dominant: bool) -> None:
        if dominant != self.dominant:
            self.dominant = dominant
            self.owner.send(wire.SetDominant(key=self.key, dominant=dominant))

    async def close(self) -> None:
        await self.owner.close_stream(self)

    def deliver(self, out: wire.CaptionOut) -> None:
        caption = Caption(segment_id=out.segment_id, speaker_id=self.speaker_id, speaker_name="", text=out.text,
                          final=out.final, start=out.start, end=out.end, language=out.language,
                          task="translate" if out.task == "translate" else "transcribe", skipped=out.skipped)
        sink = self.on_english if caption.task == "translate" else self.on_caption
        try:
            sink(caption)
        except Exception as exc:  # the room's bug must not stop the reader; never log the text
            log.error("caption delivery failed: %s", type(exc).__name__)


class TranscriberProcess:
    def __init__(self, options: WorkerOptions | None = None, *, python: str = sys.executable,
                 module: str = "transcribe.worker") -> None:
        self.options = options or WorkerOptions()
        self._python = python
        self._module = module  # the entry point run with -m: the server passes its own, which sets up its logs
        self._multilingual = False
        self._streams: dict[int, ProcessStream] = {}
        self._keys = itertools.count(1)
        self._requests = itertools.count(1)
        self._stats_waiting: dict[int, asyncio.Future[dict[str, float]]] = {}
        self._pending: list[tuple[int, bytes, float]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._crashes_in_a_row = 0
        self._started_at = 0.0
        self._closing = False
        self._latest: dict[str, int | float] = {}
        self._stats_task: asyncio.Task[None] | None = None
        self.counters = {"worker_restarts": 0, "audio_dropped_backlog": 0, "audio_dropped_while_down": 0}

    # --- lifetime ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker and wait for its model; raises TranscriptionUnavailable with the reason."""
        await self._spawn()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._writer is not None

    @property
    def multilingual(self) -> bool:
        return self._multilingual

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                self._python, "-m", self._module, "--fd", str(theirs.fileno()), *self.options.arguments(),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        try:
            first = await asyncio.wait_for(wire.read_from_worker(reader), STARTUP_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, ValueError):
            first = None
        if not isinstance(first, wire.Ready):
            writer.close()
            await self._reap()
            reason = first.reason if isinstance(first, wire.LoadFailed) else "the transcription worker did not start"
            raise TranscriptionUnavailable(reason)
        self._multilingual = first.multilingual
        self._writer = writer
        self._started_at = time.monotonic()
        for stream in self._streams.values():  # after a restart: carry on where each speaker is
            self.send(wire.OpenStream(key=stream.key, language=stream.language, english=stream.english))
            if stream.dominant:
                self.send(wire.SetDominant(key=stream.key, dominant=True))
        self._reader_task = asyncio.ensure_future(self._read(reader))
        if self._stats_task is None:
            self._stats_task = asyncio.ensure_future(self._refresh_stats())

    async def _reap(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), 2.0)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await wire.read_from_worker(reader)
                if message is None:
                    break
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            log.error("transcription worker connection broke: %s", type(exc).__name__)
        finally:
            self._worker_gone()

    def _dispatch(self, message: wire.FromWorker) -> None:
        match message:
            case wire.CaptionOut(key=key):
                stream = self._streams.get(key)
                if stream is not None:
                    stream.deliver(message)
            case wire.StreamClosed(key=key):
                stream = self._streams.pop(key, None)
                if stream is not None and not stream.closed.done():
                    stream.closed.set_result(None)
            case wire.Stats(request=request, values=values):
                waiting = self._stats_waiting.pop(request, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(values)

    def _worker_gone(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        for waiting in self._stats_waiting.values():
            if not waiting.done():
                waiting.set_result({})
        self._stats_waiting.clear()
        for key, stream in list(self._streams.items()):  # streams being closed have nothing more coming
            if stream.closing:
                del self._streams[key]
                if not stream.closed.done():
                    stream.closed.set_result(None)
        if self._closing:
            return
        code = None if self._process is None else self._process.returncode
        log.error("transcription worker stopped (exit code %s); captions pause while it restarts", code)
        if time.monotonic() - self._started_at > HEALTHY_AFTER_S:
            self._crashes_in_a_row = 0
        delay = RESTART_DELAYS_S[min(self._crashes_in_a_row, len(RESTART_DELAYS_S) - 1)]
        self._crashes_in_a_row += 1
        self._restart_task = asyncio.ensure_future(self._restart(delay))

    async def _restart(self, delay: float) -> None:
        await self._reap()
        await asyncio.sleep(delay)
        if self._closing:
            return
        try:
            await self._spawn()
        except TranscriptionUnavailable as exc:
            log.error("transcription worker could not restart (%s); captions stay off", exc)
            return
        self.counters["worker_restarts"] += 1
        log.warning("transcription worker restarted; captions resume")

    async def close(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Let open streams finish their last captions for up to ``grace`` seconds (the worker drops the
        decodes it could not start by then), then stop the worker: killed if it has not exited
        KILL_AFTER_S later, or at once if this call is cancelled (the server's own grace ran out)."""
        if self._closing:
            return
        self._closing = True
        for task in (self._restart_task, self._stats_task):
            if task is not None:
                task.cancel()
        try:
            await self._stop_worker(grace)
        except asyncio.CancelledError:
            log.warning("shutdown: transcription worker stopped with captions still decoding; they are dropped")
            if self._process is not None and self._process.returncode is None:
                self._process.kill()
            await self._reap()
            raise
        finally:
            for stream in self._streams.values():
                if not stream.closed.done():
                    stream.closed.set_result(None)
            self._streams.clear()

    async def _stop_worker(self, grace: float) -> None:
        deadline = time.monotonic() + grace + KILL_AFTER_S
        if self._writer is not None:
            self.send(wire.Shutdown(grace=grace))
            try:
                await asyncio.wait_for(self._writer.drain(), max(0.1, deadline - time.monotonic()))
                if self._reader_task is not None:
                    await asyncio.wait_for(asyncio.shield(self._reader_task), max(0.1, deadline - time.monotonic()))
            except (TimeoutError, ConnectionError):
                log.warning("transcription worker did not finish within %.1f s; stopping it", grace + KILL_AFTER_S)
        if self._process is not None and self._process.returncode is None:
            try:
                await asyncio.wait_for(self._process.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                self._process.kill()
        await self._reap()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)

    # --- streams ---------------------------------------------------------------------------------

    def open_stream(self, speaker_id: str, language: str | None, *, english: bool,
                    on_caption: CaptionSink, on_english: CaptionSink) -> ProcessStream:
        stream = ProcessStream(self, next(self._keys), speaker_id, language, english, on_caption, on_english)
        self._streams[stream.key] = stream
        self.send(wire.OpenStream(key=stream.key, language=language, english=english))
        return stream

    async def close_stream(self, stream: ProcessStream) -> None:
        if stream.key not in self._streams or stream.closed.done():
            return
        stream.closing = True
        self.send(wire.CloseStream(key=stream.key))
        if not self.running:
            self._streams.pop(stream.key, None)
            stream.closed.set_result(None)
            return
        try:
            await asyncio.wait_for(asyncio.shield(stream.closed), CLOSE_STREAM_TIMEOUT_S)
        except TimeoutError:
            self._streams.pop(stream.key, None)
            log.warning("a caption stream did not finish closing in time")

    def queue_audio(self, key: int, payload: bytes, room_time: float) -> None:
        if not self.running:
            self.counters["audio_dropped_while_down"] += 1
            return
        self._pending.append((key, payload, room_time))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_S, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        writer = self._writer
        if writer is None:
            self.counters["audio_dropped_while_down"] += len(pending)
            return
        if writer.transport.get_write_buffer_size() > MAX_BUFFERED:
            self.counters["audio_dropped_backlog"] += len(pending)
            return
        writer.write(wire.frame(wire.Audio(packets=pending)))

    def send(self, message: wire.Message) -> None:
        """Control messages keep their order relative to audio: pending packets go first."""
        if self._writer is None:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._writer.write(wire.frame(message))

    def latest_stats(self) -> dict[str, int | float]:
        """The worker's figures as of at most STATS_EVERY_S ago, plus this side's counters; never waits."""
        return {**self._latest, **self.counters}

    async def _refresh_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            if self.running:
                self._latest = await self.stats()

    async def stats(self) -> dict[str, int | float]:
        values: dict[str, int | float] = dict(self.counters)
        if self.running:
            request = next(self._requests)
            waiting: asyncio.Future[dict[str, float]] = asyncio.get_running_loop().create_future()
            self._stats_waiting[request] = waiting
            self.send(wire.StatsRequest(request=request))
            try:
                values.update(await asyncio.wait_for(waiting, 5.0))
            except TimeoutError:
                self._stats_waiting.pop(request, None)
        return values
