"""Breakout rooms of one group: the plan, who goes where, the time, and the child Rooms while they are open.

The main Room owns one `Breakouts` (created by the first `breakout-plan`, dropped when everyone is back), and
this object owns everything about them: the room names, the assignment, the mode, the timer and the child
Rooms. A child is a whole Room (its own forwarding, captions, chat, hands, share, presence) that no join can
name: people only get there by being moved by this object, so nobody from another group can enter one.

Moving reuses the person's media connection: the seat's owner (signaling, the `Seating` given here) lets go of
everything of the old room, points the seat at the new one and wires the publications again; the server
renegotiates and the browser never reconnects.

Time is one `loop.call_later` at a time: the end of the rooms' time, then the end of the closing notice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, Protocol

from sfu import messages

if TYPE_CHECKING:
    from sfu.room.participant import Participant
    from sfu.room.room import Room

logger = logging.getLogger(__name__)

State = Literal["prepared", "open", "closing"]
Refusal = tuple[str, str] | None


class Seating(Protocol):
    """What the owner of seats (sfu/signaling/websocket.py `Rooms`) does for breakouts."""

    @property
    def breakout_notice_seconds(self) -> float: ...

    async def move(self, participant: Participant, source: Room, target: Room) -> None:
        """Take `participant` out of `source` and into `target`, keeping their seat and connection."""


class Breakouts:
    def __init__(self, main: Room, seating: Seating, names: list[str], mode: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.main = main
        self._seating = seating
        self.names = names
        self.mode = mode
        self.state: State = "prepared"
        self.assigned: dict[str, int] = {}  # participant id -> room index (absent: the main room)
        self.children: list[Room] = []  # while open or closing, one per name
        self.seconds = 0  # the whole time, extensions included (0: none)
        self._opened_at = 0.0
        self._ends_at: float | None = None
        self._closes_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._clock = clock
        self._quiet = 0  # > 0 while many people move at once: one announcement at the end
        self._tasks: set[asyncio.Future[None]] = set()
        self.closed = False

    # --- where people are ----------------------------------------------------------------------

    def rooms(self) -> list[Room]:
        """The main room, then the open breakouts."""
        return [self.main, *self.children]

    def locate(self, participant_id: str) -> tuple[Room, Participant] | None:
        for room in self.rooms():
            participant = room.participants.get(participant_id)
            if participant is not None:
                return room, participant
        return None

    def index_of(self, room: Room) -> int | None:
        return self.children.index(room) if room in self.children else None

    def live_child(self, room: Room) -> bool:
        return not self.closed and room in self.children

    @property
    def empty(self) -> bool:
        return all(not child.participants for child in self.children)

    # --- the plan ------------------------------------------------------------------------------

    def plan(self, names: list[str], mode: str) -> Refusal:
        if self.state != "prepared":
            return "breakouts-open", "breakout rooms are open; close them before changing the plan"
        self.names, self.mode = names, mode
        self.assigned = {pid: index for pid, index in self.assigned.items() if index < len(names)}
        if mode == "auto":
            self.assigned = {}
            self._fill_evenly()
        self.announce()
        return None

    def _fill_evenly(self) -> None:
        """Auto: members in the main room not assigned yet go to the emptiest rooms; facilitators stay."""
        counts = [0] * len(self.names)
        for index in self.assigned.values():
            counts[index] += 1
        for child in self.children:  # open: people already in a room count too
            for pid in child.participants:
                if pid not in self.assigned:
                    counts[self.children.index(child)] += 1
        for participant in list(self.main.participants.values()):
            if participant.role == "facilitator" or participant.id in self.assigned:
                continue
            index = counts.index(min(counts))
            self.assigned[participant.id] = index
            counts[index] += 1

    async def assign(self, participant_id: str, index: int | None) -> Refusal:
        if index is not None and index >= len(self.names):
            return "no-such-breakout", f"there are {len(self.names)} breakout rooms (0-{len(self.names) - 1})"
        if self.state == "closing":
            return "breakouts-closing", "the breakout rooms are closing; everyone returns to the main room"
        found = self.locate(participant_id)
        lobby = self.main.lobby.get(participant_id)
        if found is None and (lobby is None or self.state == "open"):  # the lobby: admit them first, then assign
            return "no-such-participant", "that person is not in the group's rooms"
        if index is None:
            self.assigned.pop(participant_id, None)
        else:
            self.assigned[participant_id] = index
        if self.state == "open" and found is not None:
            await self._move(found[1], found[0], self._room_for(index))  # announces
        else:
            self.announce()
        return None

    async def choose(self, participant: Participant, index: int | None) -> Refusal:
        """`breakout-join`: facilitators go where they like; members only when they may choose."""
        if participant.role != "facilitator" and self.mode != "choose":
            return "not-allowed", "the facilitator assigns the breakout rooms in this session"
        return await self.assign(participant.id, index)

    def cancel(self) -> Refusal:
        if self.state != "prepared":
            return "breakouts-open", "breakout rooms are open; use breakout-close to bring everyone back"
        self._finish()
        return None

    # --- open, time, close ---------------------------------------------------------------------

    async def open(self, seconds: int) -> Refusal:
        if self.state != "prepared":
            return "breakouts-open", "breakout rooms are already open"
        if seconds and seconds < messages.BREAKOUT_DURATION_MIN_S:
            return "invalid-message", (f"a breakout time is {messages.BREAKOUT_DURATION_MIN_S}-"
                                       f"{messages.BREAKOUT_DURATION_MAX_S} seconds, or 0 for none")
        self.children = [self.main.breakout_child(index, name) for index, name in enumerate(self.names)]
        self.state = "open"
        if self.mode == "auto":
            self._fill_evenly()  # people who came after the plan was made
        self.seconds = seconds
        self._opened_at = self._clock()
        if seconds:
            self._ends_at = self._clock() + seconds
            self._schedule(seconds, self._time_up)
        self._quiet += 1
        try:
            for participant in list(self.main.participants.values()):
                index = self.assigned.get(participant.id)
                if index is not None:
                    await self._move(participant, self.main, self.children[index])
        finally:
            self._quiet -= 1
        self.announce()
        return None

    def extend(self, seconds: int) -> Refusal:
        """More time (rooms without a limit get one); during the closing notice it calls the closing off."""
        if self.state == "prepared":
            return "no-breakouts", "the breakout rooms are not open"
        now = self._clock()
        self._ends_at = max(self._ends_at or now, now) + seconds
        self.seconds = round(self._ends_at - self._opened_at)
        self.state, self._closes_at = "open", None
        self._schedule(self._ends_at - now, self._time_up)
        self.announce()
        return None

    def close_all(self) -> Refusal:
        if self.state == "prepared":
            return "no-breakouts", "the breakout rooms are not open"
        if self.state == "closing":
            return None  # already on its way: the notice is not restarted
        notice = self._seating.breakout_notice_seconds
        self.state = "closing"
        self._closes_at = self._clock() + notice
        self._schedule(notice, self._return_everyone)
        self.announce()
        return None

    def facilitators_gone(self) -> None:
        """The group's last facilitator left for good: nobody is left to close the rooms, so they close now
        (with the notice), and a plan nobody can open is dropped."""
        if self.state == "prepared":
            self._finish()
        else:
            self.close_all()

    def _time_up(self) -> None:
        self._timer = None
        self.close_all()

    def _return_everyone(self) -> None:
        self._timer = None
        self._spawn(self._bring_back_in_turn())

    async def _bring_back_in_turn(self) -> None:
        async with self.main.breakout_lock:  # not in the middle of a facilitator's change
            await self.bring_back()

    async def bring_back(self) -> None:
        """Everyone goes back to the main room with their seat, role and settings; the breakouts end."""
        if self.closed:
            return
        self._quiet += 1
        try:
            for child in list(self.children):
                for participant in list(child.participants.values()):
                    await self._move(participant, child, self.main)
        finally:
            self._quiet -= 1
        self._finish()

    def _finish(self) -> None:
        """The breakouts are over: children close (their chat and captions go) and everyone is told."""
        self.close()
        if self.main.breakouts is self:
            self.main.breakouts = None
        self.main.announce_breakouts()

    def close(self) -> None:
        """Nothing fires after this; open children close (the main room is closing, or everyone is back)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        children, self.children = self.children, []
        for child in children:
            child.ended = True
            child.close()

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, delay), callback)

    # --- moving and telling --------------------------------------------------------------------

    def _room_for(self, index: int | None) -> Room:
        return self.main if index is None else self.children[index]

    async def _move(self, participant: Participant, source: Room, target: Room) -> None:
        if source is target:
            self.announce()
            return
        self._quiet += 1
        try:
            await self._seating.move(participant, source, target)
        except Exception:  # one broken connection must not keep the others from moving
            logger.exception("moving %s to another room failed", participant.id)
        finally:
            self._quiet -= 1
        self.announce()

    def broadcast(self, sender: Participant, text: str) -> Refusal:
        text = " ".join(text.split())
        if not text:
            return "invalid-message", "a message needs some text"
        message = messages.BreakoutMessage(name=sender.name, text=text)
        for room in self.rooms():
            room.broadcast_event(message)
        return None

    def announce(self) -> None:
        """Everyone in every room of the group gets the state as they may see it (after each change)."""
        if self._quiet or self.closed:
            return
        for room in self.rooms():
            for participant in room.participants.values():
                participant.send_event(self.view(participant, self.index_of(room)))

    def view(self, recipient: Participant, where: int | None) -> messages.BreakoutsState:
        now = self._clock()
        if self.state == "prepared":
            counts = [0] * len(self.names)
            for pid, index in self.assigned.items():
                if pid in self.main.participants or pid in self.main.lobby:  # not those who left meanwhile
                    counts[index] += 1
        else:
            counts = [len(child.participants) for child in self.children]
        people: list[messages.BreakoutPerson] = []
        if recipient.role == "facilitator":
            for room in self.rooms():
                people.extend(messages.BreakoutPerson(participant_id=p.id, name=p.name, role=p.role,
                                                      room=self.index_of(room), assigned=self.assigned.get(p.id))
                              for p in room.participants.values())
        remaining = None if self._ends_at is None else round(max(0.0, self._ends_at - now), 2)
        closing_in = None if self._closes_at is None else round(max(0.0, self._closes_at - now), 2)
        return messages.BreakoutsState(
            state=self.state, mode=self.mode,
            rooms=[messages.BreakoutRoomInfo(index=i, name=name, count=counts[i]) for i, name in enumerate(self.names)],
            room=where, assigned=self.assigned.get(recipient.id), main_count=len(self.main.participants),
            seconds=self.seconds, remaining=remaining, closing_in=closing_in, people=people)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def none_state(recipient: Participant) -> messages.BreakoutsState:
    """What everyone gets when the breakouts end or a plan is dropped."""
    del recipient
    return messages.BreakoutsState(state="none", mode="", rooms=[], room=None, assigned=None, main_count=0,
                                   seconds=0, remaining=None, closing_in=None, people=[])
