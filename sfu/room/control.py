"""Data-channel requests: validated, rate limited, and checked against the sender's role on the server.

A participant cannot act as a facilitator by crafting messages: every facilitator-only request is
refused unless the sender joined with the room's facilitator secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sfu import messages
from sfu.limits.ratelimit import chat_bucket
from sfu.room.breakouts import Breakouts
from sfu.room.participant import Participant
from sfu.room.room import Room

logger = logging.getLogger(__name__)

Kick = Callable[[Room, Participant, str], Awaitable[None]]  # (room, who, reason) -> bye, close, release the seat
EndSession = Callable[[Room], Awaitable[None]]


class RoomControl:
    def __init__(self, kick: Kick, end_session: EndSession) -> None:
        self._kick = kick
        self._end_session = end_session
        self._tasks: set[asyncio.Task[None]] = set()

    def handle_raw(self, room: Room, sender: Participant, raw: str | bytes) -> None:
        if not sender.message_limit.allow():
            sender.send_event(messages.ChannelError(code="rate-limited", message="too many messages; slow down"))
            return
        try:
            request = messages.decode_channel(raw, messages.ChannelRequest)
        except messages.InvalidMessage as exc:
            sender.send_event(messages.ChannelError(code="invalid-message", message=str(exc), request=exc.request))
            return
        error = self.handle(room, sender, request)
        if error is not None:
            code, text = error
            tag = type(request).__struct_config__.tag
            sender.send_event(messages.ChannelError(code=code, message=text, request=str(tag)))
            return
        for observer in room.observers:
            observer.channel_request(room, sender, request)

    def handle(self, room: Room, sender: Participant, request: messages.Struct) -> tuple[str, str] | None:
        """Apply one request; returns (code, message) when it is refused."""
        if sender.id not in room.participants:
            return "not-joined", "you are not in the room"
        if isinstance(request, messages.FACILITATOR_ONLY) and sender.role != "facilitator":
            return "not-allowed", "only the facilitator can do that"
        if isinstance(request, messages.BREAKOUT_REQUESTS) and room.e2ee:
            # Members would move between rooms that hold different keys; not designed yet (docs/architecture.md).
            return "e2ee-room", "breakout rooms are not available in an end-to-end encrypted group yet"
        if isinstance(request, messages.BREAKOUT_REQUESTS):
            # People move (renegotiation, observers): the work is async, and any refusal comes as a later `error`.
            self._spawn(self._breakout(room, sender, request))
            return None
        match request:
            case messages.SetSpokenLanguage(language=language):
                sender.spoken_language = language
            case messages.SetSubtitleLanguage():
                pass  # the subtitle router (an observer) owns the choice and answers with subtitle-status
            case messages.SetCaptionNameHidden(hidden=hidden):
                sender.caption_name_hidden = hidden
            case messages.DismissAlert(alert_id=alert_id):
                return room.dismiss_alert(alert_id, sender)
            case messages.SendChat(text=text):
                problem = room.post_chat(sender, text)
                if problem is not None:
                    return problem
            case messages.RaiseHand():
                room.set_hand(sender.id, True)
            case messages.LowerHand():
                room.set_hand(sender.id, False)
            case messages.RequestUnmute():
                if not sender.muted_by_facilitator:
                    return "invalid-message", "you are not muted by the facilitator"
                room.send_to_facilitators(messages.UnmuteRequested(participant_id=sender.id, name=sender.name))
            case messages.SetVideoViews(views=views):
                sender.media.set_video_views(views)
            case messages.SetAudioOnly(enabled=enabled):
                sender.media.set_audio_only(enabled)
            case messages.Lock():
                room.main.set_locked(True)  # joining is the main room's: a lock from a breakout locks it
            case messages.Unlock():
                room.main.set_locked(False)
            case messages.EndSession():
                self._spawn(self._end_session(room.main))  # from a breakout too: the whole session ends
            case messages.DeleteChat(message_id=message_id):
                if not room.delete_chat(message_id):
                    return "no-such-message", "that message is not in the chat any more"
            case messages.SetMediaState(microphone=microphone, camera=camera):
                room.set_media_state(sender, microphone, camera)
            case messages.React(reaction=reaction):
                problem = room.react(sender, reaction)
                if problem is not None:
                    return "rate-limited", problem
            case messages.AskForHelp(text=text):
                refusal = room.ask_for_help(sender, text)
                if refusal is not None:
                    return refusal
            case messages.MuteAll():
                room.mute_all()
            case messages.StartShare():
                return room.start_share(sender)
            case messages.StopShare():
                room.stop_share(sender.id)
            case messages.ClearShareTimer():
                room.clear_share_timer()
            case messages.SendSealed():
                return room.relay_sealed(sender, request)
            case _:
                return self._act_on_participant(room, sender, request)
        return None

    def _act_on_participant(self, room: Room, sender: Participant,
                            request: messages.Struct) -> tuple[str, str] | None:
        target_id = getattr(request, "participant_id", None)
        target = room.participants.get(target_id) if isinstance(target_id, str) else None
        if target is None and isinstance(target_id, str) and room.main.breakouts is not None:
            found = room.locate(target_id)  # a facilitator acts on anyone in the group's rooms, wherever they are
            if found is not None:
                room, target = found
        if target is None:
            return "no-such-participant", "that person is not in the room"
        match request:
            case messages.LowerHandOf():
                room.set_hand(target.id, False)
            case messages.Mute():
                room.set_paused(target, "audio", True)
            case messages.Unmute():
                room.set_paused(target, "audio", False)
            case messages.StopVideo():
                room.set_paused(target, "video", True)
            case messages.AllowVideo():
                room.set_paused(target, "video", False)
            case messages.AllowShare(allowed=allowed):
                return room.allow_share(target, allowed)
            case messages.StopShareOf():
                room.stop_share(target.id)
            case messages.SetShareTimer(seconds=seconds):
                return room.set_share_timer(target, seconds)
            case messages.Remove():
                if target is sender:
                    return "invalid-message", "you cannot remove yourself; leave instead"
                if target.browser_key:
                    room.removed_keys.add(target.browser_key)
                room.removed_ids.add(target.id)
                self._spawn(self._kick(room, target, "removed"))
            case _:
                return "invalid-message", f"unhandled request {type(request).__name__}"
        return None

    async def _breakout(self, room: Room, sender: Participant, request: messages.Struct) -> None:
        main = room.main
        async with main.breakout_lock:  # one change at a time: a plan cannot change while people move
            if sender.id not in room.participants:  # moved or gone while an earlier change ran
                return
            refusal = await self._apply_breakout(main, sender, request)
        if refusal is not None:
            code, text = refusal
            sender.send_event(messages.ChannelError(code=code, message=text,
                                                    request=str(type(request).__struct_config__.tag)))

    async def _apply_breakout(self, main: Room, sender: Participant,
                              request: messages.Struct) -> tuple[str, str] | None:
        breakouts = main.breakouts
        if isinstance(request, messages.PlanBreakouts):
            names = [" ".join(name.split()) for name in request.names]
            if not all(name and name.isprintable() for name in names):
                return "invalid-message", "give every breakout room a name made of visible characters"
            if breakouts is None:
                if main.seating is None:
                    return "not-allowed", "breakout rooms are not available on this server"
                main.breakouts = Breakouts(main, main.seating, names, request.mode)
                return main.breakouts.plan(names, request.mode)
            return breakouts.plan(names, request.mode)
        if isinstance(request, messages.BroadcastToBreakouts) and breakouts is not None:
            if sender.chat_limit is None:  # a message to every room counts as chat
                sender.chat_limit = chat_bucket()
            if not sender.chat_limit.allow():
                return "rate-limited", "you are sending messages too quickly; wait a few seconds"
        if breakouts is None:
            return "no-breakouts", "there are no breakout rooms; send breakout-plan first"
        match request:
            case messages.AssignBreakout(participant_id=participant_id, room=index):
                return await breakouts.assign(participant_id, index)
            case messages.JoinBreakout(room=index):
                return await breakouts.choose(sender, index)
            case messages.OpenBreakouts(seconds=seconds):
                return await breakouts.open(seconds)
            case messages.ExtendBreakouts(seconds=seconds):
                return breakouts.extend(seconds)
            case messages.CloseBreakouts():
                return breakouts.close_all()
            case messages.CancelBreakouts():
                return breakouts.cancel()
            case messages.BroadcastToBreakouts(text=text):
                return breakouts.broadcast(sender, text)
        return "invalid-message", f"unhandled request {type(request).__name__}"

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
