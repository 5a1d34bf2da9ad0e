"""End-to-end encrypted rooms in real browsers: the server forwards frames it cannot read, captions and chat
travel sealed, and a member removed by the facilitator cannot read what follows."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import av
import numpy as np
import pytest
from cryptography.exceptions import InvalidTag
from playwright.async_api import Browser, Page, async_playwright

from peerwell.captioning import CaptionsObserver
from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.media.publication import EncodedFrame, Publication
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server
from tests.support import sframe
from tests.support.browser import AUDIO_BYTES, TILE_STATE, join, launch_chromium, new_page, poll, uncaught
from tests.support.firefox import FirefoxPage
from tests.support.real_speech import clip_path

pytestmark = pytest.mark.browser

ROOM = "sealed-circle"
PLAIN = "plain-circle"
SECRET = "facilitator-secret-for-tests"


class NoTranscriber:
    """Stands in for the server's Whisper: records every stream the server opens (an E2EE room must open none)."""

    multilingual = False

    def __init__(self) -> None:
        self.opened: list[str] = []

    def open_stream(self, speaker_id: str, *args: object, **kwargs: object) -> object:
        self.opened.append(speaker_id)
        raise AssertionError("the server opened a transcription stream")

    async def close(self) -> None:
        return None


@pytest.fixture
async def speech_browser() -> AsyncIterator[Browser]:
    """Headless Chromium whose fake microphone reads real speech (beckett.wav, looped)."""
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright, clip_path("beckett.wav"))
        yield browser
        await browser.close()


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    groups = GroupsConfig(
        server=ServerSettings(allow_adhoc_rooms=False),
        groups=(Group(slug=ROOM, name="Sealed circle", agreement="Be kind.", lobby=False, facilitator_secret=SECRET,
                      e2ee=True),
                Group(slug=PLAIN, name="Plain circle", agreement="Be kind.", lobby=False,
                      facilitator_secret=SECRET)))
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, groups=groups)
    transcriber = NoTranscriber()
    runner, running = await start_server(app=create_app(config, [CaptionsObserver(transcriber, None)]))  # type: ignore[arg-type]
    running.transcriber = transcriber  # type: ignore[attr-defined]
    yield running
    await runner.cleanup()


def room_key() -> tuple[str, bytes]:
    raw = os.urandom(32)
    return base64.urlsafe_b64encode(raw).decode().rstrip("="), raw


def link(key: str, room: str = ROOM, secret: str | None = None) -> str:
    return f"/#room={room}&key={key}" + (f"&secret={secret}" if secret else "")


@dataclass
class Tap:
    """A sink on the forwarding path: every encoded frame the server handles for one publication."""

    publication: Publication
    frames: list[EncodedFrame] = field(default_factory=list)

    def deliver(self, frame: EncodedFrame) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        self.publication.remove_sink(self)


def tap(server: RunningServer, room: str, name: str, kind: str) -> Tap:
    participant = next(p for p in server.rooms.rooms[room].participants.values() if p.name == name)
    publication = participant.media.publications[kind]
    sink = Tap(publication)
    publication.add_sink(sink)
    return sink


def participant_id(server: RunningServer, room: str, name: str) -> str:
    return next(p.id for p in server.rooms.rooms[room].participants.values() if p.name == name)


FRAME_STATS = "() => window.peerwell.call.e2ee.frameStats()"
SECURITY_CODE = "() => { const c = document.getElementById('e2ee-code'); return c ? c.dataset.code : null; }"


async def sees_and_hears(page: Page, other: str) -> None:
    first = await poll(page, TILE_STATE, other, lambda v: v is not None and v["width"] > 0 and v["time"] > 0,
                       timeout=30)
    await asyncio.sleep(1.0)
    later = await page.evaluate(TILE_STATE, other)
    assert later["time"] > first["time"], f"{other}'s video is not advancing"
    before = await poll(page, AUDIO_BYTES, None, lambda b: b > 0)
    await asyncio.sleep(1.0)
    assert await page.evaluate(AUDIO_BYTES, None) > before, f"no audio arriving from {other}"


def decode_vp8(frames: list[bytes]) -> list[np.ndarray]:
    """Decoded pictures; raises when libvpx refuses the bytes."""
    codec = av.CodecContext.create("vp8", "r")
    out = []
    for data in frames:
        for picture in codec.decode(av.Packet(data)):
            out.append(picture.to_ndarray(format="gray"))
    return out


def tone_strength(frames: list[bytes]) -> float:
    """How much of the decoded Opus is the fake microphone's 440 Hz tone (0..1)."""
    codec = av.CodecContext.create("opus", "r")
    samples = []
    for data in frames:
        try:
            for chunk in codec.decode(av.Packet(data)):
                samples.append(chunk.to_ndarray().astype(np.float64).reshape(-1))
        except av.error.FFmpegError:
            continue
    if not samples:
        return 0.0
    pcm = np.concatenate(samples)[: 48000 * 2]
    spectrum = np.abs(np.fft.rfft(pcm))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 48000)
    band = spectrum[(freqs > 420) & (freqs < 460)].sum()
    return float(band / max(spectrum.sum(), 1e-9))


async def test_encrypted_media_between_two_chromium_members(server: RunningServer, browser: Browser) -> None:
    key, raw = room_key()
    alice = await new_page(browser, server.http_url)
    await join(alice, "Alice", link=link(key), mic=True, camera=True)
    bob = await new_page(browser, server.http_url)
    await join(bob, "Bob", link=link(key), mic=True, camera=True)

    await sees_and_hears(alice, "Bob")
    await sees_and_hears(bob, "Alice")
    # The same security code on both sides: they hold the same key.
    codes = [await poll(page, SECURITY_CODE, None, bool) for page in (alice, bob)]
    assert codes[0] == codes[1] and len(codes[0].split()) == 6
    for page in (alice, bob):
        stats = await page.evaluate(FRAME_STATS)
        assert stats["sealed"] > 50 and stats["opened"] > 50, stats

    # What the server reads without decoding still works: simulcast layer heights from keyframes (clear VP8
    # header bytes) and the dominant speaker from the audio-level header extension.
    room = server.rooms.rooms[ROOM]
    alice_id = participant_id(server, ROOM, "Alice")
    # (How many layers Chrome sends depends on the machine's load; each one's height is read all the same.)
    heights = sorted(layer.height for layer in room.participants[alice_id].media.publications["video"].layers())
    assert heights and all(h > 0 for h in heights), heights
    deadline = asyncio.get_running_loop().time() + 10
    while room.speakers.current is None:
        assert asyncio.get_running_loop().time() < deadline, "no dominant speaker from audio levels"
        await asyncio.sleep(0.2)

    # A tap on the server's forwarding path: only ciphertext past the clear header bytes.
    video, audio = tap(server, ROOM, "Alice", "video"), tap(server, ROOM, "Alice", "audio")
    await asyncio.sleep(3.0)
    video.close()
    audio.close()
    keyframes = [f for f in video.frames if f.keyframe]
    assert keyframes, "the server still finds keyframes (clear VP8 header bytes)"
    assert len(audio.frames) > 20
    epoch0 = sframe.first_epoch_secret(raw, ROOM)

    # Video: every frame is sealed; opened with the room's key it decodes, as it is it does not.
    layer = [f for f in video.frames if f.ssrc == keyframes[-1].ssrc]
    start = layer.index(keyframes[-1])
    sealed = [f.data for f in layer[start:]]
    for frame in layer:
        assert sframe.frame_epoch(frame.data, sframe.clear_bytes("video", frame.keyframe)) == 0
    opened = [sframe.open_frame(f.data, sframe.clear_bytes("video", f.keyframe), epoch0, alice_id, "camera")
              for f in layer[start:]]
    plain_pictures = decode_vp8(opened)
    assert plain_pictures, "the decrypted frames decode (the format is what the docs say)"
    try:
        cipher_pictures = decode_vp8(sealed)
    except av.error.FFmpegError:
        cipher_pictures = []  # libvpx refused the ciphertext: the expected outcome
    for cipher, plain in zip(cipher_pictures, plain_pictures, strict=False):
        assert cipher.shape != plain.shape or np.abs(cipher.astype(int) - plain.astype(int)).mean() > 10

    # Audio: the Opus TOC byte is clear, the rest is not; only the opened frames carry the tone.
    sealed_audio = [f.data for f in audio.frames]
    opened_audio = []
    for data in sealed_audio:
        if len(data) <= 3:
            opened_audio.append(data)  # DTX
            continue
        opened_audio.append(sframe.open_frame(data, 1, epoch0, alice_id, "audio"))
    plain_tone, cipher_tone = tone_strength(opened_audio), tone_strength(sealed_audio)
    assert plain_tone > 0.1 and cipher_tone < plain_tone / 5, (plain_tone, cipher_tone)
    # A wrong key never opens a frame.
    with pytest.raises(InvalidTag):
        sframe.open_frame(sealed[0], 10, os.urandom(32), alice_id, "camera")
    assert not uncaught(alice, bob)


# Finals shown from `speaker` (at least 9 characters) and whether any contains one of `words`: only counts come back,
# so the test process never holds a caption's text (the memory check below would find its own copy).
FINALS_FROM = """([speaker, words]) => {
  const lines = [...document.querySelectorAll('#captions-history li')]
    .filter(li => li.querySelector('.speaker').textContent.startsWith(speaker))
    .map(li => li.querySelector('.text').textContent.toLowerCase()).filter(text => text.length > 8);
  return { count: lines.length, words: lines.some(text => words.some(w => text.includes(w))) };
}"""


async def test_captions_made_in_the_browser_travel_sealed(server: RunningServer, speech_browser: Browser) -> None:
    key, _raw = room_key()
    alice = await new_page(speech_browser, server.http_url)
    await join(alice, "Alice", link=link(key), mic=True, camera=False)
    bob = await new_page(speech_browser, server.http_url)
    await join(bob, "Bob", link=link(key), mic=True, camera=False)
    finals = await poll(bob, FINALS_FROM, ["Alice", ["fail", "tried", "try"]], lambda v: v["count"] > 0, timeout=90)
    assert finals["words"]
    assert server.transcriber.opened == []  # type: ignore[attr-defined]
    assert not uncaught(alice, bob)


HELD_SECRETS = "() => window.peerwell.call.e2ee.heldSecrets()"
EPOCH = """() => { const c = document.getElementById('e2ee-code');
  return c && c.dataset.epoch ? Number(c.dataset.epoch) : null; }"""
SEND_CHAT = """async (text) => {
  document.getElementById('chat-input').value = text;
  document.getElementById('chat-form').requestSubmit();
}"""


def opens_with(open_: object, secrets: list[bytes]) -> bool:
    for secret in secrets:
        try:
            open_(secret)  # type: ignore[operator]
        except (InvalidTag, ValueError):
            continue
        return True
    return False


async def test_a_removed_member_cannot_read_what_follows(server: RunningServer, speech_browser: Browser) -> None:
    key, raw = room_key()
    fran = await new_page(speech_browser, server.http_url)
    await join(fran, "Fran", link=link(key, secret=SECRET), mic=False, camera=False)
    alice = await new_page(speech_browser, server.http_url)
    await join(alice, "Alice", link=link(key), mic=True, camera=True)
    mallory = await new_page(speech_browser, server.http_url)
    await join(mallory, "Mallory", link=link(key), mic=True, camera=True)
    for page in (fran, alice, mallory):
        assert await poll(page, EPOCH, None, lambda e: e == 0) == 0
    code_before = await fran.evaluate(SECURITY_CODE)
    await sees_and_hears(mallory, "Alice")
    mallory_secrets = [sframe.unb64url(s) for s in (await mallory.evaluate(HELD_SECRETS)).values()]
    assert mallory_secrets == [sframe.first_epoch_secret(raw, ROOM)]

    # The facilitator removes Mallory; the server announces it, and the members move to a key she never gets.
    mallory_id = participant_id(server, ROOM, "Mallory")
    await fran.evaluate("(id) => window.peerwell.call.sendControl({type: 'remove', participant_id: id})", mallory_id)
    await mallory.wait_for_selector("#goodbye:not([hidden])", timeout=15000)
    for page in (fran, alice):
        assert await poll(page, EPOCH, None, lambda e: e == 1) == 1
    codes = {await page.evaluate(SECURITY_CODE) for page in (fran, alice)}
    assert len(codes) == 1 and code_before not in codes
    await sees_and_hears(fran, "Alice")  # media goes on under the new key

    room = server.rooms.rooms[ROOM]
    removed_at = room.room_time()
    alice_id = participant_id(server, ROOM, "Alice")
    video, audio = tap(server, ROOM, "Alice", "video"), tap(server, ROOM, "Alice", "audio")
    await alice.evaluate(SEND_CHAT, "only for those still here")
    await poll(fran, "() => document.querySelectorAll('#chat-list .chat-message').length", None, lambda n: n >= 1)
    await poll(fran, FINALS_FROM, ["Alice", []], lambda v: v["count"] > 0, timeout=90)
    deadline = asyncio.get_running_loop().time() + 60
    while not [c for c in room.sealed_captions if c.at > removed_at + 1]:
        assert asyncio.get_running_loop().time() < deadline, "no caption after the removal"
        await asyncio.sleep(0.5)
    video.close()
    audio.close()
    current = sframe.unb64url((await alice.evaluate(HELD_SECRETS))["1"])

    frames = [(f, "camera", sframe.clear_bytes("video", f.keyframe)) for f in video.frames]
    frames += [(f, "audio", 1) for f in audio.frames if len(f.data) > 3]
    assert len(frames) > 50
    for frame, source, clear in frames:
        assert sframe.frame_epoch(frame.data, clear) == 1
        assert not opens_with(lambda s, f=frame, src=source, c=clear: sframe.open_frame(f.data, c, s, alice_id, src),
                              mallory_secrets)
    first, source, clear = frames[0]
    assert sframe.open_frame(first.data, clear, current, alice_id, source)  # the members' key opens them
    after = [c for c in room.sealed_captions if c.at > removed_at] + [m for m in room.chat if m.at > removed_at]
    assert any(m.kind == "chat" for m in after) and any(m.kind == "caption" for m in after)
    for message in after:
        assert sframe.envelope_epoch(message.payload) == 1
        assert not opens_with(lambda s, m=message: sframe.open_envelope(m.payload, s, m.kind), mallory_secrets)
        assert sframe.open_envelope(message.payload, current, message.kind)["text"]
    assert not uncaught(fran, alice)


# What a member's browser shows, reversed: the test process never holds the plain text itself, so finding it in
# this process's memory can only mean the server kept it.
REVERSED_FINAL = """(speaker) => {
  const li = [...document.querySelectorAll('#captions-history li')]
    .find(l => l.querySelector('.speaker').textContent.startsWith(speaker)
      && l.querySelector('.text').textContent.length > 8);
  return li ? [...li.querySelector('.text').textContent].reverse().join('') : null;
}"""
SEND_SECRET_CHAT = """() => {
  const text = 'note ' + crypto.randomUUID();
  document.getElementById('chat-input').value = text;
  document.getElementById('chat-form').requestSubmit();
  return [...text].reverse().join('');
}"""
CHAT_TEXTS = """() => [...document.querySelectorAll('#chat-list .chat-text')]
  .map(p => [...p.textContent].reverse().join(''))"""


def held_in_memory(needle: str) -> list[str]:
    """Every str/bytes reachable in this process (from any tracked object, through untracked containers such as
    dicts or structs of plain values too) that contains `needle`."""
    encoded = needle.encode()
    found = []
    seen = {id(needle)}
    stack = gc.get_objects()
    while stack:
        for ref in gc.get_referents(stack.pop()):
            if id(ref) in seen:
                continue
            seen.add(id(ref))
            if isinstance(ref, str):
                if needle in ref:
                    found.append(repr(ref[:80]))
            elif isinstance(ref, bytes | bytearray):
                if encoded in ref:
                    found.append(repr(bytes(ref[:80])))
            else:
                stack.append(ref)
    return found


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_two_chromium_and_a_firefox_member_see_hear_and_read_each_other(
        server: RunningServer, speech_browser: Browser) -> None:
    logs = Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(logs)
    root.setLevel(logging.INFO)
    key, _raw = room_key()
    firefox = await FirefoxPage(server.http_url).start()
    try:
        alice = await new_page(speech_browser, server.http_url)
        await join(alice, "Alice", link=link(key), mic=True, camera=True)
        bob = await new_page(speech_browser, server.http_url)
        await join(bob, "Bob", link=link(key), mic=True, camera=True)
        await join(firefox, "Fiona", link=link(key), mic=True, camera=True)
        codes = {await poll(page, SECURITY_CODE, None, bool, timeout=30) for page in (alice, bob, firefox)}
        assert len(codes) == 1
        for page, others in ((firefox, ("Alice", "Bob")), (alice, ("Fiona", "Bob")), (bob, ("Fiona",))):
            for other in others:
                await sees_and_hears(page, other)
        stats = await firefox.evaluate(FRAME_STATS)
        assert stats["sealed"] > 50 and stats["opened"] > 50, stats

        # Captions each Chromium member's browser made, read by the others (Firefox's fake microphone is a tone).
        for page, speakers in ((firefox, ("Alice", "Bob")), (alice, ("Bob",)), (bob, ("Alice",))):
            for speaker in speakers:
                await poll(page, FINALS_FROM, [speaker, []], lambda v: v["count"] > 0, timeout=90)
        said = await poll(bob, REVERSED_FINAL, "Alice", bool)
        written = await firefox.evaluate(SEND_SECRET_CHAT)
        await poll(alice, CHAT_TEXTS, None, lambda texts: written in texts)

        # Nothing said or written is in the server's memory, its logs or its metrics; only ciphertext went by.
        gc.collect()
        for reversed_text in (said, written):
            needle = reversed_text[::-1]
            probe = {"held": f"<{needle}>"}  # the scan does find text that is held
            assert held_in_memory(needle)
            del probe
            assert not held_in_memory(needle)
            assert not [line for line in logs.lines if needle in line]
            from prometheus_client import REGISTRY, generate_latest
            assert needle.encode() not in generate_latest(REGISTRY)
            del needle
        assert server.transcriber.opened == []  # type: ignore[attr-defined]
        assert not uncaught(alice, bob)
    finally:
        root.removeHandler(logs)
        root.setLevel(level)
        await firefox.close()


async def test_passphrase_and_refusals_before_any_media(server: RunningServer, browser: Browser) -> None:
    from tests.support.browser import fill_details, open_group

    async def join_with(page: Page, name: str, passphrase: str | None) -> None:
        await open_group(page, link=f"/#room={ROOM}")
        await fill_details(page, name, mic=True, camera=False)
        if passphrase is not None:
            await page.fill("#e2ee-passphrase", passphrase)
        await page.click("#join-button")

    # No key and no passphrase: told why on the form; the server never saw a join.
    nobody = await new_page(browser, server.http_url)
    await join_with(nobody, "Nobody", None)
    await nobody.wait_for_selector("#join-error:not([hidden])")
    assert "key" in (await nobody.text_content("#join-error") or "")
    # A browser without encoded-frame transforms: told so before anything is opened.
    old = await new_page(browser, server.http_url)
    await old.add_init_script("delete window.RTCRtpScriptTransform;")
    await join_with(old, "Old", None)
    await old.wait_for_selector("#join-error:not([hidden])")
    assert "cannot encrypt" in (await old.text_content("#join-error") or "")
    assert ROOM not in server.rooms.rooms or not server.rooms.rooms[ROOM].participants

    # The same passphrase in two browsers: the same room key (PBKDF2), the same security code.
    alice = await new_page(browser, server.http_url)
    await join_with(alice, "Alice", "river stones and quiet water")
    await alice.wait_for_selector("#room:not([hidden])", timeout=20000)
    bob = await new_page(browser, server.http_url)
    await join_with(bob, "Bob", "river stones and quiet water")
    await bob.wait_for_selector("#room:not([hidden])", timeout=20000)
    codes = {await poll(page, SECURITY_CODE, None, bool, timeout=30) for page in (alice, bob)}
    assert len(codes) == 1
    await poll(bob, AUDIO_BYTES, None, lambda b: b > 0)
    # A key in the link of a room that is not encrypted: refused, nothing sent.
    plain = await new_page(browser, server.http_url)
    await join(plain, "Plain", link=f"/#room={PLAIN}&key={room_key()[0]}", expect="error")
    assert "not end-to-end encrypted" in (await plain.text_content("#join-error") or "")
    assert not [p for p in server.rooms.rooms[PLAIN].participants.values() if p.name == "Plain"] \
        if PLAIN in server.rooms.rooms else True
    assert not uncaught(alice, bob)


async def test_newcomers_get_a_key_when_only_held_seats_remain(browser: Browser) -> None:
    groups = GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False),
                          groups=(Group(slug=ROOM, name="Sealed circle", agreement="Be kind.", lobby=False,
                                        facilitator_secret=SECRET, e2ee=True),))
    runner, server = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=60, groups=groups))
    try:
        key, _raw = room_key()
        alice = await new_page(browser, server.http_url)
        await join(alice, "Alice", link=link(key), mic=True, camera=False)
        await poll(alice, SECURITY_CODE, None, bool)
        await alice.context.close()  # a dropped connection: her seat is held for a reconnect, nobody holds the key
        bob = await new_page(browser, server.http_url)
        await join(bob, "Bob", link=link(key), mic=True, camera=False)
        assert len(server.rooms.rooms[ROOM].participants) == 2
        bob_code = await poll(bob, SECURITY_CODE, None, bool, timeout=30)
        carol = await new_page(browser, server.http_url)
        await join(carol, "Carol", link=link(key), mic=True, camera=False)
        assert await poll(carol, SECURITY_CODE, None, bool, timeout=30) == bob_code
        await poll(carol, FRAME_STATS, None, lambda s: s["opened"] > 20)
        assert not uncaught(bob, carol)
    finally:
        await runner.cleanup()
