"""Tests for sfu.room.groups: loading, validation errors and the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfu.config import open_rooms
from sfu.room.groups import (
    DEFAULT_CRISIS_RESOURCES,
    Group,
    GroupsConfig,
    GroupsConfigError,
    load_groups,
    valid_slug,
)

AGREEMENT = "What is said here stays here. Listen without giving advice unless asked."
SECRET = "s3cret-facilitator-token-0123456789"

VALID = f'''
[server]
allow_adhoc_rooms = false
crisis_resources = "Call 112 if someone is in immediate danger."

[[group]]
slug = "evening-anxiety"
name = "Evening anxiety circle"
topic = "Anxiety"
description = "A circle for people living with anxiety."
agreement = """{AGREEMENT}"""
schedule = "Tuesdays 19:00 CET"
max_participants = 12
language = "en"
lobby = true
facilitator_secret = "{SECRET}"

[[group]]
slug = "duelo"
name = "Círculo de duelo"
agreement = "Lo que se comparte aquí se queda aquí."
language = "es"
'''


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "groups.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_valid_file(tmp_path: Path) -> None:
    config = load_groups(_write(tmp_path, VALID))
    assert config.source == tmp_path / "groups.toml"
    assert config.server.allow_adhoc_rooms is False
    assert config.server.crisis_resources == "Call 112 if someone is in immediate danger."
    assert [g.slug for g in config.groups] == ["evening-anxiety", "duelo"]

    first = config.get("evening-anxiety")
    assert first == Group(
        slug="evening-anxiety",
        name="Evening anxiety circle",
        agreement=AGREEMENT,
        topic="Anxiety",
        description="A circle for people living with anxiety.",
        schedule="Tuesdays 19:00 CET",
        max_participants=12,
        language="en",
        lobby=True,
        facilitator_secret=SECRET,
        secret_generated=False,
    )

    # Optional fields take their defaults; a missing secret is generated.
    second = config.get("duelo")
    assert second is not None
    assert (second.topic, second.description, second.schedule) == ("", "", "")
    assert (second.max_participants, second.language, second.lobby) == (12, "es", True)
    assert second.secret_generated and len(second.facilitator_secret) == 32  # token_urlsafe(24)

    assert "duelo" in config and "nope" not in config and config.get("nope") is None


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    config = load_groups(_write(tmp_path, VALID))
    assert SECRET not in repr(config)
    assert all(g.facilitator_secret not in repr(g) for g in config.groups)


def test_generated_secrets_differ_per_group_and_per_load(tmp_path: Path) -> None:
    one = '[[group]]\nslug = "{0}"\nname = "{0}"\nagreement = "Be kind."\n'
    body = one.format("a") + one.format("b")
    path = _write(tmp_path, body)
    first, second = load_groups(path), load_groups(path)
    secrets_seen = {g.facilitator_secret for c in (first, second) for g in c.groups}
    assert len(secrets_seen) == 4


def test_minimal_and_empty_files(tmp_path: Path) -> None:
    config = load_groups(_write(tmp_path, ""))
    assert config.groups == () and config.server.allow_adhoc_rooms is True
    assert config.server.crisis_resources == DEFAULT_CRISIS_RESOURCES


def test_text_is_stripped_and_multiline_kept(tmp_path: Path) -> None:
    body = '[[group]]\nslug = "a"\nname = "  Spaced  "\nagreement = """\nLine one.\nLine two.\n"""\n'
    group = load_groups(_write(tmp_path, body)).groups[0]
    assert group.name == "Spaced"
    assert group.agreement == "Line one.\nLine two."


# --- errors: each names the file, the group and the field -------------------------------------------

GOOD = 'slug = "room"\nname = "Room"\nagreement = "Be kind."\n'


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        # file-level
        ("[[group]\n", ("not valid TOML",)),
        ('[[groups]]\nslug = "a"\n', ("unknown key(s) groups", "[[group]]")),
        ('title = "x"\n', ("unknown key(s) title",)),
        ('server = "yes"\n', ("[server]", "must be a table")),
        ('[group]\nslug = "a"\n', ("group", "array of tables")),
        ("[server]\nallow_adhoc_rooms = false\n", ("allow_adhoc_rooms", "nobody could join")),
        # [server]
        ("[server]\nallow_adhoc = true\n", ("[server]", "unknown key(s) allow_adhoc")),
        ('[server]\nallow_adhoc_rooms = "yes"\n', ("[server]", "allow_adhoc_rooms", "true or false")),
        ('[server]\ncrisis_resources = "  "\n', ("[server]", "crisis_resources", "non-empty")),
        ("[server]\ncrisis_resources = 112\n", ("crisis_resources",)),
        # unknown keys and missing fields
        (f"[[group]]\n{GOOD}max_participant = 5\n", ("group #1 ('room')", "unknown key(s) max_participant")),
        ('[[group]]\nname = "Room"\nagreement = "x"\n', ("group #1", "slug", "required")),
        ('[[group]]\nslug = "room"\nagreement = "x"\n', ("group #1 ('room')", "name", "required")),
        ('[[group]]\nslug = "room"\nname = "Room"\n', ("group #1 ('room')", "agreement", "required")),
        ('[[group]]\nslug = "room"\nname = "Room"\nagreement = "   "\n', ("agreement", "must not be empty")),
        # bad types
        ('[[group]]\nslug = 7\nname = "Room"\nagreement = "x"\n', ("group #1", "slug", "must be a string")),
        (f'[[group]]\n{GOOD}max_participants = "12"\n', ("('room')", "max_participants", "integer")),
        (f"[[group]]\n{GOOD}max_participants = true\n", ("max_participants", "integer, got a boolean")),
        (f"[[group]]\n{GOOD}max_participants = 12.5\n", ("max_participants", "integer")),
        (f'[[group]]\n{GOOD}lobby = "yes"\n', ("('room')", "lobby", "true or false")),
        (f"[[group]]\n{GOOD}topic = 3\n", ("topic", "must be a string")),
        (f"[[group]]\n{GOOD}facilitator_secret = 123456789012345678\n", ("facilitator_secret", "string")),
        # out of range / invalid values
        (f"[[group]]\n{GOOD}max_participants = 1\n", ("max_participants", "from 2 to 50, got 1")),
        (f"[[group]]\n{GOOD}max_participants = 51\n", ("max_participants", "from 2 to 50, got 51")),
        (f'[[group]]\n{GOOD}language = "English"\n', ("language", "ISO 639")),
        (f'[[group]]\n{GOOD}facilitator_secret = "short"\n', ("facilitator_secret", "at least 16")),
        (f'[[group]]\n{GOOD}facilitator_secret = "has spaces in the secret text"\n', ("facilitator_secret",)),
        (f'[[group]]\nslug = "r"\nagreement = "x"\nname = "{"n" * 81}"\n', ("name", "at most 80")),
        # slugs
        ('[[group]]\nslug = "Evening"\nname = "R"\nagreement = "x"\n', ("slug", "not a valid slug")),
        ('[[group]]\nslug = "-room"\nname = "R"\nagreement = "x"\n', ("slug", "not a valid slug")),
        ('[[group]]\nslug = "a room"\nname = "R"\nagreement = "x"\n', ("slug",)),
        (f'[[group]]\nslug = "{"a" * 41}"\nname = "R"\nagreement = "x"\n', ("slug", "at most 40")),
        # duplicates (a repeated key is already a TOML error, reported with its line)
        (f'[[group]]\n{GOOD}name = "Again"\n', ("not valid TOML", "line 5")),
        (f"[[group]]\n{GOOD}[[group]]\n{GOOD}", ("group #2", "duplicate slug 'room'", "group #1")),
    ],
)
def test_errors(tmp_path: Path, body: str, fragments: tuple[str, ...]) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(GroupsConfigError) as info:
        load_groups(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message


def test_error_attributes(tmp_path: Path) -> None:
    path = _write(tmp_path, f"[[group]]\n{GOOD}max_participants = 80\n")
    with pytest.raises(GroupsConfigError) as info:
        load_groups(path)
    assert (info.value.path, info.value.group, info.value.field) == (
        path,
        "group #1 ('room')",
        "max_participants",
    )
    assert isinstance(info.value, ValueError)


def test_bad_secret_is_not_echoed(tmp_path: Path) -> None:
    path = _write(tmp_path, f'[[group]]\n{GOOD}facilitator_secret = "tooshort1"\n')
    with pytest.raises(GroupsConfigError) as info:
        load_groups(path)
    assert "tooshort1" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GroupsConfigError, match="file not found"):
        load_groups(tmp_path / "missing.toml")


# --- defaults and ad-hoc rooms ----------------------------------------------------------------------


def test_default_config() -> None:
    config = GroupsConfig.default()
    assert config.source is None
    assert config.server.allow_adhoc_rooms is False  # no unmoderated rooms unless the operator asks
    assert config.server.crisis_resources == DEFAULT_CRISIS_RESOURCES
    assert 1 <= len(config.groups) <= 2
    for group in config.groups:
        assert valid_slug(group.slug)
        assert group.lobby and 2 <= group.max_participants <= 50
        assert group.secret_generated and len(group.facilitator_secret) == 32
        text = group.agreement.lower()
        # What a real support group states up front.
        assert "not therapy" in text or "no es terapia" in text
        assert "emergenc" in text
        assert "advice" in text or "consejos" in text
        assert "stays here" in text or "se queda aquí" in text
    assert {g.language for g in config.groups} == {"en", "es"}
    # Fresh secrets on each call, never a hard-coded one.
    assert config.groups[0].facilitator_secret != GroupsConfig.default().groups[0].facilitator_secret


def test_default_resources_point_to_emergency_help() -> None:
    assert "emergency" in DEFAULT_CRISIS_RESOURCES and "112" in DEFAULT_CRISIS_RESOURCES


def test_adhoc_group(tmp_path: Path) -> None:
    with pytest.raises(GroupsConfigError, match="ad-hoc rooms are disabled"):
        GroupsConfig.default().adhoc_group("friday-walk")
    config = open_rooms()  # what a bare ServerConfig uses (tests, benchmarks)
    room = config.adhoc_group("friday-walk")
    assert room.adhoc and room.slug == "friday-walk" and not room.lobby
    assert room.secret_generated and len(room.facilitator_secret) == 32
    with pytest.raises(GroupsConfigError, match="invalid room slug"):
        config.adhoc_group("Not A Slug")
    with pytest.raises(GroupsConfigError, match="is configured"):
        config.adhoc_group(config.groups[0].slug)
    closed = load_groups(_write(tmp_path, VALID))
    with pytest.raises(GroupsConfigError, match="ad-hoc rooms are disabled"):
        closed.adhoc_group("friday-walk")


@pytest.mark.parametrize(
    ("slug", "ok"),
    [
        ("a", True),
        ("room-1", True),
        ("a" * 40, True),
        ("", False),
        ("a" * 41, False),
        ("Room", False),
        ("room-", False),
        ("-room", False),
        ("ro_om", False),
        ("rööm", False),
    ],
)
def test_valid_slug(slug: str, ok: bool) -> None:
    assert valid_slug(slug) is ok
