"""Typed wire messages: WebSocket signaling and the data channel. docs/protocol.md describes each one.

Every inbound message is decoded against these schemas before anything acts on it; a message that does
not fit gets an ``error`` reply and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

MAX_SIGNALING_BYTES = 256 * 1024  # an SDP with many m-lines stays well under this
MAX_SIGNALING_FRAME = 4 * MAX_SIGNALING_BYTES  # larger WebSocket frames close the socket (1009)
MAX_CHANNEL_BYTES = 16 * 1024
MAX_VIDEO_VIEWS = 64  # publishers a `set-video-views` may name

# The one room-name rule: group slugs (sfu/room/groups.py), `join.room`, and the web client (which gets it from
# GET /api/groups) all use these. docs/protocol.md states it.
ROOM_NAME_MAX = 40
ROOM_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
ROOM_NAME_RULE = ("1-40 characters of lowercase a-z, digits 0-9 and dashes, not starting or ending with a dash "
                  "(for example tuesday-circle)")
RoomName = Annotated[str, msgspec.Meta(min_length=1, max_length=ROOM_NAME_MAX, pattern=ROOM_NAME_PATTERN)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Sdp = Annotated[str, msgspec.Meta(min_length=10, max_length=MAX_SIGNALING_BYTES)]
Token = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
LanguageCode = Annotated[str, msgspec.Meta(min_length=2, max_length=8, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")]


class Struct(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False, tag_field="type"):
    pass


# --- client -> server, WebSocket -------------------------------------------------------------

ParticipantId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
ChatText = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Join(Struct, tag="join"):
    room: RoomName
    name: DisplayName
    accept_agreement: bool = False  # the group's agreement and the privacy notice were shown and accepted
    resume: Token | None = None  # token from an earlier "joined", to take back one's place after a drop
    secret: Annotated[str, msgspec.Meta(max_length=128)] | None = None  # facilitator secret
    language: LanguageCode | None = None  # language I speak; None = detect


class Offer(Struct, tag="offer"):
    sdp: Sdp


class Answer(Struct, tag="answer"):
    sdp: Sdp


class Leave(Struct, tag="leave"):
    pass


class Admit(Struct, tag="admit"):
    participant_id: ParticipantId


class Deny(Struct, tag="deny"):
    participant_id: ParticipantId


ClientSignal = Join | Offer | Answer | Leave | Admit | Deny


# --- server -> client, WebSocket -------------------------------------------------------------

class IceServer(msgspec.Struct, omit_defaults=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class ParticipantInfo(msgspec.Struct):
    id: str
    name: str
    role: str = "participant"


TrackSource = Literal["camera", "screen"]


class TrackInfo(msgspec.Struct):
    participant_id: str
    kind: str
    source: TrackSource = "camera"  # "screen": the publisher's screen share (their second video m-line)


class CaptionsStatus(msgspec.Struct):
    enabled: bool
    model: str | None = None
    reason: str | None = None  # why captions are off


class GroupInfo(msgspec.Struct):
    slug: str
    name: str
    topic: str
    description: str
    schedule: str
    language: str
    lobby: bool
    max_participants: int
    agreement: str
    e2ee: bool = False  # end-to-end encrypted room: media, captions and chat are sealed in the browsers


class Joined(Struct, tag="joined"):
    participant_id: str
    room: str
    resume: str
    role: str
    ice_servers: list[IceServer]
    participants: list[ParticipantInfo]
    captions: CaptionsStatus
    group: GroupInfo


class Lobby(Struct, tag="lobby"):
    message: str


class LobbyUpdate(Struct, tag="lobby-update"):
    waiting: list[ParticipantInfo]


class Admitted(Struct, tag="admitted"):
    participants: list[ParticipantInfo]
    resume: str | None = None  # several nodes: a token that also survives a failover (a lobby token does not)


class ServerOffer(Struct, tag="offer"):
    sdp: str
    tracks: dict[str, TrackInfo]  # mid -> whose media arrives on that transceiver


class ServerAnswer(Struct, tag="answer"):
    sdp: str


class ParticipantJoined(Struct, tag="participant-joined"):
    participant: ParticipantInfo


class ParticipantLeft(Struct, tag="participant-left"):
    participant_id: str


class ErrorMessage(Struct, tag="error"):
    code: str
    message: str


class Bye(Struct, tag="bye"):
    reason: str


class Moved(Struct, tag="moved"):
    """You were moved to another room of your group (a breakout, or back to the main room)."""

    room: int | None  # the breakout's index (None: the main room)
    name: str
    participants: list[ParticipantInfo]  # who is there (you not included), as in `joined`


class ServerShutdown(Struct, tag="server-shutdown"):
    """The server process is stopping (SIGTERM): media and the socket close in a few seconds."""

    reason: str  # for people, e.g. "the server is restarting"
    retry: bool  # True: reconnect (join with your resume token) after retry_after seconds
    retry_after: float
    resume: str | None = None  # restart ticket: use it as `resume` with the next server (replaces the token)


# --- data channel ----------------------------------------------------------------------------

class SetSpokenLanguage(Struct, tag="set-spoken-language"):
    language: LanguageCode | None


class SetSubtitleLanguage(Struct, tag="set-subtitle-language"):
    language: LanguageCode | None


class SetCaptionNameHidden(Struct, tag="set-caption-name-hidden"):
    hidden: bool


class SendChat(Struct, tag="chat"):
    text: ChatText


class RaiseHand(Struct, tag="raise-hand"):
    pass


class LowerHand(Struct, tag="lower-hand"):
    pass


class RequestUnmute(Struct, tag="request-unmute"):
    pass


class LowerHandOf(Struct, tag="lower-hand-of"):
    participant_id: ParticipantId


class Mute(Struct, tag="mute"):
    participant_id: ParticipantId


class Unmute(Struct, tag="unmute"):
    participant_id: ParticipantId


class StopVideo(Struct, tag="stop-video"):
    participant_id: ParticipantId


class AllowVideo(Struct, tag="allow-video"):
    participant_id: ParticipantId


class Remove(Struct, tag="remove"):
    participant_id: ParticipantId


class Lock(Struct, tag="lock"):
    pass


class Unlock(Struct, tag="unlock"):
    pass


class EndSession(Struct, tag="end-session"):
    pass


class DeleteChat(Struct, tag="delete-chat"):
    message_id: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class SetMediaState(Struct, tag="set-media-state"):
    microphone: bool  # my own microphone is on (not self-muted)
    camera: bool  # my own camera is on


Reaction = Literal["nod", "heart", "clap", "me-too", "wave"]


class React(Struct, tag="react"):
    reaction: Reaction


class AskForHelp(Struct, tag="ask-for-help"):
    text: Annotated[str, msgspec.Meta(max_length=500)] = ""


class SetVideoViews(Struct, tag="set-video-views"):
    """The height in device pixels at which each publisher's video is shown (0: not shown)."""

    views: Annotated[dict[Annotated[str, msgspec.Meta(max_length=64)], Annotated[int, msgspec.Meta(ge=0, le=4320)]],
                     msgspec.Meta(max_length=MAX_VIDEO_VIEWS)]


class SetAudioOnly(Struct, tag="set-audio-only"):
    """Low bandwidth: receive audio and captions only (no video at all) while enabled."""

    enabled: bool


class MuteAll(Struct, tag="mute-all"):
    pass


# Share timer bounds (seconds). The room enforces its configured minimum (ServerConfig.share_timer_min_seconds,
# 30 unless a test lowers it); the schema itself only refuses what no room accepts.
SHARE_TIMER_MIN_S = 30
SHARE_TIMER_MAX_S = 1800


class StartShare(Struct, tag="start-share"):
    """Forward my screen publication (the second video m-line of my offer) to everyone else."""


class StopShare(Struct, tag="stop-share"):
    pass


class AllowShare(Struct, tag="allow-share"):
    participant_id: ParticipantId
    allowed: bool


class StopShareOf(Struct, tag="stop-share-of"):
    participant_id: ParticipantId


class SetShareTimer(Struct, tag="set-share-timer"):
    participant_id: ParticipantId
    seconds: Annotated[int, msgspec.Meta(ge=1, le=SHARE_TIMER_MAX_S)]


class ClearShareTimer(Struct, tag="clear-share-timer"):
    pass


class DismissAlert(Struct, tag="dismiss-alert"):
    """A facilitator marks a safety alert "not a concern" for this session."""

    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


# End-to-end encrypted rooms (docs/protocol.md "End-to-end encrypted rooms"): the browsers seal captions, chat
# and key messages; the server relays the bytes with the same ordering, history and limits as plain ones.
SEALED_PAYLOAD_MAX = 12000
SealedPayload = Annotated[str, msgspec.Meta(min_length=16, max_length=SEALED_PAYLOAD_MAX, pattern=r"^[A-Za-z0-9_-]+$")]
SealedKind = Literal["caption", "chat", "key", "help"]


class SendSealed(Struct, tag="sealed"):
    """Opaque bytes for the room (base64url): a caption (partial or final), a chat line, a key message, or an
    "I need help" text for the facilitators only."""

    kind: SealedKind
    payload: SealedPayload
    final: bool = False  # captions: a final is kept for late joiners; partials are only relayed


# --- breakout rooms (docs/protocol.md, "Breakout rooms"; sfu/room/breakouts.py) ---------------------
BREAKOUT_MIN_ROOMS, BREAKOUT_MAX_ROOMS = 2, 20
BREAKOUT_NOTICE_S = 60  # everyone's warning before the rooms close (ServerConfig.breakout_notice_seconds)
BREAKOUT_DURATION_MIN_S, BREAKOUT_DURATION_MAX_S = 60, 4 * 3600
BREAKOUT_EXTEND_MIN_S, BREAKOUT_EXTEND_MAX_S = 60, 3600
BreakoutName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
BreakoutIndex = Annotated[int, msgspec.Meta(ge=0, lt=BREAKOUT_MAX_ROOMS)]
BreakoutMode = Literal["auto", "manual", "choose"]


class PlanBreakouts(Struct, tag="breakout-plan"):
    """Prepare (or change, before they open) the rooms and how people get into them."""

    names: Annotated[list[BreakoutName], msgspec.Meta(min_length=BREAKOUT_MIN_ROOMS, max_length=BREAKOUT_MAX_ROOMS)]
    mode: BreakoutMode = "auto"


class AssignBreakout(Struct, tag="breakout-assign"):
    participant_id: ParticipantId
    room: BreakoutIndex | None  # None: the main room


class OpenBreakouts(Struct, tag="breakout-open"):
    seconds: Annotated[int, msgspec.Meta(ge=0, le=BREAKOUT_DURATION_MAX_S)] = 0  # 0: no time limit


class ExtendBreakouts(Struct, tag="breakout-extend"):
    seconds: Annotated[int, msgspec.Meta(ge=BREAKOUT_EXTEND_MIN_S, le=BREAKOUT_EXTEND_MAX_S)]


class CloseBreakouts(Struct, tag="breakout-close"):
    pass


class CancelBreakouts(Struct, tag="breakout-cancel"):
    pass


class BroadcastToBreakouts(Struct, tag="breakout-broadcast"):
    text: ChatText


class JoinBreakout(Struct, tag="breakout-join"):
    room: BreakoutIndex | None  # None: the main room


BREAKOUT_REQUESTS = (PlanBreakouts, AssignBreakout, OpenBreakouts, ExtendBreakouts, CloseBreakouts, CancelBreakouts,
                     BroadcastToBreakouts, JoinBreakout)

ChannelRequest = (SetSpokenLanguage | SetSubtitleLanguage | SetCaptionNameHidden | SendChat | RaiseHand
                  | LowerHand | RequestUnmute | LowerHandOf | Mute | Unmute | StopVideo | AllowVideo | Remove
                  | Lock | Unlock | EndSession | DeleteChat | SetMediaState | React | AskForHelp | MuteAll
                  | SetVideoViews | SetAudioOnly | StartShare | StopShare | AllowShare | StopShareOf
                  | SetShareTimer | ClearShareTimer | DismissAlert | PlanBreakouts | AssignBreakout | OpenBreakouts
                  | ExtendBreakouts | CloseBreakouts | CancelBreakouts | BroadcastToBreakouts | JoinBreakout
                  | SendSealed)
FACILITATOR_ONLY = (LowerHandOf, Mute, Unmute, StopVideo, AllowVideo, Remove, Lock, Unlock, EndSession, DeleteChat,
                    MuteAll, AllowShare, StopShareOf, SetShareTimer, ClearShareTimer, DismissAlert, PlanBreakouts,
                    AssignBreakout, OpenBreakouts, ExtendBreakouts, CloseBreakouts, CancelBreakouts,
                    BroadcastToBreakouts)


class Caption(Struct, tag="caption"):
    segment_id: str
    speaker_id: str
    speaker_name: str
    text: str
    final: bool
    start: float
    end: float
    language: str
    # Seconds of speech before `end` with no caption (a final only): decoding fell behind and that audio
    # was dropped rather than captioned late. Clients show "captions skipped N s". 0 otherwise.
    skipped: float = 0.0


class Subtitle(Struct, tag="subtitle"):
    segment_id: str
    language: str
    text: str
    source_language: str


class SubtitleStatus(Struct, tag="subtitle-status"):
    language: str | None
    available: bool
    message: str


class SubtitleLanguages(Struct, tag="subtitle-languages"):
    languages: list[str]


class ChatMessage(Struct, tag="chat"):
    message_id: str
    participant_id: str
    name: str
    text: str
    at: float


class Sealed(Struct, tag="sealed"):
    """A sealed caption, chat line or key message as the server relays it: it never reads `payload`."""

    kind: str
    participant_id: str  # the sender; "" for others when a caption's speaker hid their name (facilitators excepted)
    payload: str
    final: bool
    message_id: str  # chat: the id `delete-chat` takes; "" otherwise
    at: float  # room time when relayed


class ChatDeleted(Struct, tag="chat-deleted"):
    message_id: str


class HandEntry(msgspec.Struct):
    participant_id: str
    name: str


class Hands(Struct, tag="hands"):
    queue: list[HandEntry]


class Moderation(Struct, tag="moderation"):
    action: str
    participant_id: str


class UnmuteRequested(Struct, tag="unmute-requested"):
    participant_id: str
    name: str


class DominantSpeakerChanged(Struct, tag="dominant-speaker"):
    participant_id: str


class VideoCap(Struct, tag="video-cap"):
    """The most the receiving publisher's video may use (sfu/room/video_quality.py decides; protocol.md)."""

    max_bitrate_bps: int
    max_framerate: int
    max_height: int


class VideoDelivery(Struct, tag="video-delivery"):
    """Per publisher whose video this listener is sent: "shown", or why it is paused ("hidden",
    "audio-only", "bandwidth"). Sent when it changes (sfu/media/layer_allocation.py)."""

    videos: dict[str, str]


class MediaState(Struct, tag="media-state"):
    participant_id: str
    microphone: bool
    camera: bool


class ReactionShown(Struct, tag="reaction"):
    participant_id: str
    reaction: str


class HelpRequested(Struct, tag="help-requested", omit_defaults=True):
    participant_id: str
    name: str
    text: str
    at: float
    breakout: int | None = None  # asked from this breakout room (index); left out in the main room
    breakout_name: str | None = None


class RoomState(Struct, tag="room-state"):
    locked: bool
    room_time: float = 0.0  # seconds since the room opened, when sent: lets clients show chat times


class SafetyAlert(Struct, tag="safety-alert", omit_defaults=True):
    alert_id: str
    participant_id: str
    name: str
    text: str
    source: str
    category: str
    at: float
    resources: str
    triggers: list[str]  # the words that raised it, as said
    confidence: float  # 0..1
    layer: str  # "phrase", "learned" or "context" (with the speaker's previous line)
    breakout: int | None = None  # said in this breakout room (index); left out in the main room
    breakout_name: str | None = None


class AlertDismissed(Struct, tag="alert-dismissed"):
    alert_id: str
    by: str  # the facilitator's name


class Share(Struct, tag="share"):
    """Who shares their screen now (None: nobody)."""

    participant_id: str | None


class ShareAllowed(Struct, tag="share-allowed"):
    """Members (not facilitators, who always may) a facilitator allowed to share their screen."""

    participant_ids: list[str]


class ShareTimer(Struct, tag="share-timer"):
    """The share timer (participant_id None: none is set). A cue for people: nothing is cut off."""

    participant_id: str | None
    seconds: int  # the whole share time (0 when none is set)
    remaining: float  # seconds left when sent, never below 0; clients count down from it
    expired: bool


class BreakoutRoomInfo(msgspec.Struct):
    index: int
    name: str
    count: int  # people in it now; before the rooms open, people the plan puts there


class BreakoutPerson(msgspec.Struct):
    participant_id: str
    name: str
    role: str
    room: int | None  # where they are now (None: the main room)
    assigned: int | None  # where the plan puts them (None: the main room)


class BreakoutsState(Struct, tag="breakouts"):
    """The group's breakout rooms as this recipient may see them (facilitators also get `people`)."""

    state: Literal["none", "prepared", "open", "closing"]
    mode: str
    rooms: list[BreakoutRoomInfo]
    room: int | None  # where you are now (None: the main room)
    assigned: int | None  # where the plan puts you
    main_count: int  # people in the main room now
    seconds: int  # the rooms' whole time, extensions included (0: no time limit)
    remaining: float | None  # seconds until the time is up, when sent (None: no time limit)
    closing_in: float | None  # "closing": seconds until everyone is back in the main room, when sent
    people: list[BreakoutPerson]


class BreakoutMessage(Struct, tag="breakout-message"):
    name: str  # the facilitator who sent it
    text: str


class RoomEntered(Struct, tag="room-entered"):
    """First on the channel after a move: what came before belonged to the room you left."""

    room: int | None  # the breakout's index (None: the main room)
    name: str


class ChannelError(Struct, tag="error"):
    code: str
    message: str
    request: str | None = None


_signal_decoder = msgspec.json.Decoder(ClientSignal)
_encoder = msgspec.json.Encoder()


class InvalidMessage(ValueError):
    def __init__(self, message: str, request: str | None = None) -> None:
        super().__init__(message)
        self.request = request  # the message's "type", when that much was readable


class _Envelope(msgspec.Struct):
    type: str | None = None


def _request_type(raw: str | bytes) -> str | None:
    try:
        kind = msgspec.json.decode(raw, type=_Envelope).type
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return kind[:40] if kind else None


def _decode(raw: str | bytes, limit: int, decode: Any) -> Any:
    """Decode or raise InvalidMessage; nothing a client sends may raise anything else."""
    if len(raw) > limit:
        raise InvalidMessage(f"message larger than {limit} bytes")
    try:
        return decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidMessage(str(exc), _request_type(raw)) from None
    except UnicodeDecodeError:
        raise InvalidMessage("messages must be UTF-8 text") from None
    except RecursionError:  # msgspec's guard against deep nesting; nothing is left half-done
        raise InvalidMessage("JSON nested too deeply") from None


def decode_signal(raw: str | bytes) -> ClientSignal:
    return _decode(raw, MAX_SIGNALING_BYTES, _signal_decoder.decode)


def decode_channel(raw: str | bytes, schema: Any) -> Any:
    return _decode(raw, MAX_CHANNEL_BYTES, lambda data: msgspec.json.decode(data, type=schema))


def encode(message: msgspec.Struct) -> str:
    return _encoder.encode(message).decode()
