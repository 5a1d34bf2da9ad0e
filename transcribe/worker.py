"""The transcription worker process: `python -m transcribe.worker --fd N ...`, started by TranscriberProcess.

It runs at a lower CPU priority than the server, so when both want the two cores, forwarding wins and
captions wait. It loads the model once, then serves streams over the socket it inherited (see
worker_protocol.py). It holds audio only in memory, logs no text, and exits when the server goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from models.whisper import DEFAULT_MODEL
from transcribe import worker_protocol as wire
from transcribe.events import Caption
from transcribe.scheduler import LATENCY_BOUND_S
from transcribe.transcriber import LocalStream, LocalTranscriber

log = logging.getLogger("peerwell.transcribe.worker")

NICENESS = 10  # below the server (0): the OS gives forwarding the CPU first


@dataclass(frozen=True)
class WorkerOptions:
    model: str = DEFAULT_MODEL
    workers: int = 1
    full_window: bool = False
    cpu_threads: int = 0
    log_format: str = "text"  # as the server's own log: "text" or "json"

    def arguments(self) -> list[str]:
        args = ["--model", self.model, "--workers", str(self.workers), "--cpu-threads", str(self.cpu_threads),
                "--log-format", self.log_format]
        return args + (["--full-window"] if self.full_window else [])


def load_transcriber(options: WorkerOptions) -> LocalTranscriber:
    """Blocking: resolves (offline first) and loads the model. Raises ModelUnavailable or load errors."""
    from transcribe.service import CaptionService

    service = CaptionService.from_model_name(None, options.model, workers=options.workers,  # type: ignore[arg-type]
                                             full_window=options.full_window, cpu_threads=options.cpu_threads,
                                             latency_bound_s=LATENCY_BOUND_S)  # a caption that late helps nobody
    return LocalTranscriber(service)


def load_failure(exc: BaseException) -> str:
    from models.whisper import ModelChecksumError, ModelUnavailable

    if isinstance(exc, ModelChecksumError):
        return (f"the speech model {exc.name!r} is corrupt (its sha256 does not match the published one); "
                "reinstall its package")
    if isinstance(exc, ModelUnavailable):
        return f"no speech model could be loaded ({exc.name})"
    return f"the speech model failed to load: {exc}"


class Worker:
    def __init__(self, transcriber: LocalTranscriber, writer: asyncio.StreamWriter) -> None:
        self.transcriber = transcriber
        self.writer = writer
        self.streams: dict[int, LocalStream] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def send(self, message: wire.Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(wire.frame(message))

    def _output(self, key: int) -> Callable[[Caption], None]:
        """Captions and Whisper's English alike go back as CaptionOut; `task` tells the server which is which."""
        def out(caption: Caption) -> None:
            self.send(wire.CaptionOut(key=key, segment_id=caption.segment_id, text=caption.text,
                                      final=caption.final, start=caption.start, end=caption.end,
                                      language=caption.language, task=caption.task, skipped=caption.skipped))
        return out

    def handle(self, message: wire.ToWorker) -> None:
        match message:
            case wire.Audio(packets=packets):
                for key, payload, room_time in packets:
                    stream = self.streams.get(key)
                    if stream is not None:
                        stream.push_opus(payload, room_time)
            case wire.OpenStream(key=key, language=language, english=english):
                out = self._output(key)
                self.streams[key] = self.transcriber.open_stream(str(key), language, english=english,
                                                                 on_caption=out, on_english=out)
            case wire.SetLanguage(key=key, language=language):
                if key in self.streams:
                    self.streams[key].set_language(language)
            case wire.SetEnglish(key=key, english=english):
                if key in self.streams:
                    self.streams[key].set_english(english)
            case wire.SetDominant(key=key, dominant=dominant):
                if key in self.streams:
                    self.streams[key].set_dominant(dominant)
            case wire.CloseStream(key=key):
                stream = self.streams.pop(key, None)
                task = asyncio.ensure_future(self._close_stream(key, stream))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            case wire.StatsRequest(request=request):
                task = asyncio.ensure_future(self._send_stats(request))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def _close_stream(self, key: int, stream: LocalStream | None) -> None:
        if stream is not None:
            await stream.close()
        self.send(wire.StreamClosed(key=key))

    async def _send_stats(self, request: int) -> None:
        values = {k: float(v) for k, v in (await self.transcriber.stats()).items()}
        values["opus_decode_errors"] = float(sum(s.decode_errors for s in self.streams.values()))
        self.send(wire.Stats(request=request, values=values))

    async def shutdown(self, grace: float) -> None:
        """Finalise every stream; what has not started decoding after ``grace`` seconds is dropped."""
        for key in list(self.streams):
            self.handle(wire.CloseStream(key=key))
        if self._closing:
            _, late = await asyncio.wait(set(self._closing), timeout=grace)
            if late:
                dropped = self.transcriber.service.abandon()
                log.warning("shutdown: %d caption decode(s) not finished within %.1f s were dropped", dropped, grace)
                # Streams whose only work was queued are done now; one still decoding gets no more time.
                await asyncio.wait(late, timeout=0.5)
                for task in late:
                    task.cancel()
        await self.transcriber.close()
        await self.writer.drain()


async def serve(sock: socket.socket, options: WorkerOptions) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        transcriber = await asyncio.to_thread(load_transcriber, options)
    except Exception as exc:  # a missing or corrupt model surfaces as many error types
        log.error("captions are off: %s", type(exc).__name__)
        writer.write(wire.frame(wire.LoadFailed(reason=load_failure(exc))))
        await writer.drain()
        writer.close()
        return
    worker = Worker(transcriber, writer)
    worker.send(wire.Ready(multilingual=transcriber.multilingual))
    while True:
        message = await wire.read_to_worker(reader)
        if message is None:  # the server went away: nothing left to caption for
            return
        if isinstance(message, wire.Shutdown):
            await worker.shutdown(message.grace)
            writer.close()
            return
        worker.handle(message)


def main(argv: list[str] | None = None,
         configure_logging: Callable[[str, str], None] | None = None) -> None:
    """`configure_logging(level, format)`: the composing server's log setup; plain stderr logging if None."""
    parser = argparse.ArgumentParser(prog="python -m transcribe.worker")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket to the server")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpu-threads", type=int, default=0)
    parser.add_argument("--full-window", action="store_true")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    if configure_logging is None:
        logging.basicConfig(level=logging.WARNING)  # only problems; never what was said
    else:
        configure_logging("WARNING", args.log_format)
    os.nice(NICENESS)
    options = WorkerOptions(model=args.model, workers=args.workers, full_window=args.full_window,
                            cpu_threads=args.cpu_threads)
    asyncio.run(serve(socket.socket(fileno=args.fd), options))


if __name__ == "__main__":
    main()
