"""Who is speaking, from the RFC 6464 audio level each publisher stamps on its packets: no audio is decoded.

A simpler relative of Volfin & Cohen's detector (jitsi-utils, mediasoup's ActiveSpeakerObserver), chosen
because one person talks at a time in a support group and the wire already says how loud each packet is:

- a packet is *active* when its level is at least ACTIVE_DBOV loud (RFC 6464: 0 = loudest, 127 = silence);
- a speaker's score is the fraction of the last WINDOW_S of 20 ms slots that held an active packet (packets
  that never came, as with Opus DTX, count as silence);
- the dominant speaker is the highest score of at least START_SCORE; someone else takes over only with a
  score SWITCH_MARGIN above the current speaker's, or once the current speaker falls below STOP_SCORE.
  Pauses between words therefore do not flip the highlight, and a cough does not steal it.

Pure: the caller gives it levels and times, and asks it to decide (at most every EVALUATE_EVERY_S).
"""

from __future__ import annotations

from collections import deque

ACTIVE_DBOV = 50  # louder than -50 dBov; LiveKit's default is 30, browsers' quiet speech sits around 40-55
WINDOW_S = 1.0
FRAME_S = 0.02
START_SCORE = 0.3
STOP_SCORE = 0.1
SWITCH_MARGIN = 0.2
EVALUATE_EVERY_S = 0.2


class DominantSpeaker:
    def __init__(self) -> None:
        self._active: dict[str, deque[float]] = {}  # participant -> arrival times of active packets
        self.current: str | None = None
        self._last_evaluation = -1e9

    def heard(self, participant_id: str, level_dbov: int, now: float) -> None:
        """One audio packet from `participant_id` with its RFC 6464 level."""
        if level_dbov <= ACTIVE_DBOV:
            self._active.setdefault(participant_id, deque()).append(now)

    def forget(self, participant_id: str) -> None:
        self._active.pop(participant_id, None)
        if self.current == participant_id:
            self.current = None

    def score(self, participant_id: str, now: float) -> float:
        times = self._active.get(participant_id)
        if not times:
            return 0.0
        while times and times[0] < now - WINDOW_S:
            times.popleft()
        return min(1.0, len(times) * FRAME_S / WINDOW_S)

    def due(self, now: float) -> bool:
        return now - self._last_evaluation >= EVALUATE_EVERY_S

    def evaluate(self, now: float) -> str | None:
        """Decide who is dominant now; returns the new speaker's id when it changed, else None."""
        self._last_evaluation = now
        scores = {pid: self.score(pid, now) for pid in list(self._active)}
        best = max(scores, key=lambda pid: scores[pid], default=None)
        current_score = scores.get(self.current, 0.0) if self.current is not None else 0.0
        if best is None or best == self.current or scores[best] < START_SCORE:
            return None
        if self.current is None or current_score < STOP_SCORE or scores[best] >= current_score + SWITCH_MARGIN:
            self.current = best
            return best
        return None
