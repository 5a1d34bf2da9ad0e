"""The transcription worker as `peerwell serve` starts it: transcribe/worker.py with peerwell's log setup."""

from peerwell.logs import configure_logging
from transcribe import worker

if __name__ == "__main__":
    worker.main(configure_logging=configure_logging)
