"""Support groups (rooms) defined in a TOML file.

Schema::

    [server]                          # optional table
    allow_adhoc_rooms = true          # default true: a room is created on first join of an
                                      # unconfigured slug (see GroupsConfig.adhoc_group)
    crisis_resources = "..."          # default: DEFAULT_CRISIS_RESOURCES; shown to facilitators with a
                                      # safety alert. Replace it with services for your area.
    adhoc_e2ee = false                # default false: true makes every ad-hoc room end-to-end encrypted

    [[group]]                         # zero or more; with none, allow_adhoc_rooms must be true
    slug = "evening-anxiety"          # required; URL id: 1-40 chars of a-z 0-9 and "-", no "-" at either end
    name = "Evening anxiety circle"   # required; 1-80 chars
    agreement = "..."                 # required; group agreement shown before joining, 1-5000 chars
    topic = "Anxiety"                 # optional; up to 80 chars
    description = "..."               # optional; up to 2000 chars
    schedule = "Tuesdays 19:00 CET"   # optional, free text; up to 200 chars
    max_participants = 12             # optional; integer 2..50, default 12
    language = "en"                   # optional; default caption language, ISO 639 code, default "en"
    lobby = true                      # optional; default true: the facilitator admits people
    e2ee = false                      # optional; default false: end-to-end encrypted media, captions and chat
                                      # (docs/architecture.md "End-to-end encrypted rooms"); the key travels
                                      # in the link's fragment or a passphrase, never to this server
    safety_phrases = "phrases.toml"   # optional; the group's own crisis phrases in either language, added to
                                      # the built-in ones (format: safety/README.md); relative to this file
    facilitator_secret = "..."        # optional; at least 16 characters, no spaces. When absent one
                                      # is generated with secrets.token_urlsafe(24) at every start
                                      # (Group.secret_generated tells the server to show it once)

Unknown keys, wrong types, out-of-range values and duplicate slugs raise GroupsConfigError, whose
message names the file, the group and the field, e.g.
``groups.toml: group #2 ('evening-anxiety'): max_participants: must be an integer from 2 to 50, got 80``.
Secrets are kept out of repr() so they do not end up in logs by accident.
"""

from __future__ import annotations

import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfu.messages import ROOM_NAME_PATTERN

__all__ = [
    "DEFAULT_AGREEMENT",
    "DEFAULT_CRISIS_RESOURCES",
    "Group",
    "GroupsConfig",
    "GroupsConfigError",
    "ServerSettings",
    "generate_secret",
    "load_groups",
    "valid_slug",
]

SLUG_RE = re.compile(ROOM_NAME_PATTERN)  # a group's slug is its room name: one rule, in sfu/messages.py
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
MIN_PARTICIPANTS, MAX_PARTICIPANTS = 2, 50
MIN_SECRET_LENGTH = 16

DEFAULT_CRISIS_RESOURCES = (
    "Check in with the person privately and calmly, and ask directly whether they are safe right now. "
    "If someone is in immediate danger, contact local emergency services: 112 (EU), 911 (US and Canada), "
    "999 (UK). Crisis lines: 988 (US Suicide & Crisis Lifeline), 116 123 (Samaritans, UK and Ireland), "
    "024 (Spain). Other countries: https://findahelpline.com"
)

DEFAULT_AGREEMENT = """\
Welcome. This is a peer support group: people with lived experience supporting each other. \
It is not therapy and not emergency care.

- What is shared here stays here. Please don't record, take screenshots, or repeat anything \
that could identify someone.
- You decide how much to share. Use any name you like; camera and microphone are optional, \
and you can always pass.
- Speak from your own experience ("I" rather than "you").
- Listen without interrupting, and don't give advice unless someone asks for it.
- Be kind and respectful. No judgement, no pressure, no selling or recruiting.
- If you are in immediate danger, please contact your local emergency number or a crisis line now.
- If something you say or write suggests you may be at risk, the facilitator may be alerted \
privately so they can check in with you. Other members never see this.
- The facilitator may pause the conversation or remove anyone who makes the group unsafe."""

_DEFAULT_AGREEMENT_ES = """\
Bienvenida, bienvenido. Este es un grupo de apoyo entre pares: personas con experiencias \
parecidas que se acompañan. No es terapia ni atención de emergencias.

- Lo que se comparte aquí se queda aquí. Por favor, no grabes, no hagas capturas de pantalla \
ni cuentes nada que pueda identificar a alguien.
- Tú decides cuánto compartir. Puedes usar el nombre que quieras; la cámara y el micrófono son \
opcionales y siempre puedes pasar.
- Habla desde tu propia experiencia ("yo" en lugar de "tú").
- Escucha sin interrumpir y no des consejos si no te los piden.
- Trata a los demás con amabilidad y respeto. Sin juicios, sin presiones, sin vender nada.
- Si estás en peligro inmediato, llama ahora a tu número local de emergencias o a una línea \
de crisis.
- Si algo que dices o escribes sugiere que podrías estar en riesgo, la persona facilitadora \
puede recibir un aviso privado para hablar contigo. El resto del grupo nunca lo ve.
- La persona facilitadora puede pausar la conversación o retirar a quien haga el grupo inseguro."""

_DEFAULT_TOML = f'''
[server]
allow_adhoc_rooms = false  # nobody opens an unmoderated room from the directory unless the operator says so

[[group]]
slug = "evening-anxiety"
name = "Evening anxiety circle"
topic = "Anxiety"
description = """\\
A peer support circle for people living with anxiety. Come as you are: you are welcome to \\
listen without speaking."""
agreement = """{DEFAULT_AGREEMENT}"""
schedule = "Tuesdays 19:00 CET"
max_participants = 12
language = "en"
lobby = true

[[group]]
slug = "circulo-duelo"
name = "Círculo de duelo"
topic = "Duelo"
description = """\\
Un espacio entre pares para quienes están atravesando la pérdida de un ser querido. \\
Puedes venir solo a escuchar."""
agreement = """{_DEFAULT_AGREEMENT_ES}"""
schedule = "Jueves 19:00 CET"
max_participants = 10
language = "es"
lobby = true
'''

_TOP_KEYS = frozenset({"server", "group"})
_SERVER_KEYS = frozenset({"allow_adhoc_rooms", "crisis_resources", "adhoc_e2ee"})
_REQUIRED = ("slug", "name", "agreement")
# field -> maximum length (texts) for the optional/required string fields
_TEXT_LIMITS = {
    "slug": 40,
    "name": 80,
    "agreement": 5000,
    "topic": 80,
    "description": 2000,
    "schedule": 200,
}
_GROUP_KEYS = frozenset({*_TEXT_LIMITS, "max_participants", "language", "lobby", "facilitator_secret",
                         "safety_phrases", "e2ee"})


class GroupsConfigError(ValueError):
    """The groups file is invalid. `path`, `group` and `field` say where, when known."""

    def __init__(
        self, message: str, *, path: Path | None = None, group: str | None = None, field: str | None = None
    ) -> None:
        where = [str(path) if path else "<groups config>"]
        if group:
            where.append(group)
        if field:
            where.append(field)
        super().__init__(": ".join([*where, message]))
        self.path = path
        self.group = group
        self.field = field


def generate_secret() -> str:
    return secrets.token_urlsafe(24)


def valid_slug(slug: str) -> bool:
    return bool(SLUG_RE.match(slug))


@dataclass(frozen=True, slots=True)
class ServerSettings:
    allow_adhoc_rooms: bool = True
    crisis_resources: str = DEFAULT_CRISIS_RESOURCES
    adhoc_e2ee: bool = False  # every ad-hoc room is end-to-end encrypted


@dataclass(frozen=True, slots=True)
class Group:
    slug: str
    name: str
    agreement: str
    topic: str = ""
    description: str = ""
    schedule: str = ""
    max_participants: int = 12
    language: str = "en"
    lobby: bool = True
    facilitator_secret: str = field(default_factory=generate_secret, repr=False)
    # True when the secret was generated at load time, so the server should show it once.
    secret_generated: bool = False
    adhoc: bool = False
    safety_phrases: str = ""  # the group's own crisis phrases (a phrase file, safety/README.md), added to the built-in
    e2ee: bool = False  # end-to-end encrypted: the server forwards and relays what it cannot read


@dataclass(frozen=True, slots=True)
class GroupsConfig:
    server: ServerSettings = field(default_factory=ServerSettings)
    groups: tuple[Group, ...] = ()
    source: Path | None = None  # None for the embedded default

    def get(self, slug: str) -> Group | None:
        for group in self.groups:
            if group.slug == slug:
                return group
        return None

    def __contains__(self, slug: object) -> bool:
        return isinstance(slug, str) and self.get(slug) is not None

    def adhoc_group(self, slug: str) -> Group:
        """Settings for an unconfigured room created on first join.

        Ad-hoc rooms have no lobby (nobody is appointed to admit people) and a fresh secret.
        Raises GroupsConfigError if ad-hoc rooms are disabled or the slug is invalid.
        """
        if not self.server.allow_adhoc_rooms:
            raise GroupsConfigError("ad-hoc rooms are disabled", path=self.source, field="allow_adhoc_rooms")
        if not valid_slug(slug):
            raise GroupsConfigError(f"invalid room slug {slug!r}", path=self.source, field="slug")
        if slug in self:
            raise GroupsConfigError(f"room {slug!r} is configured, use get()", path=self.source, field="slug")
        return Group(
            slug=slug, name=slug, agreement=DEFAULT_AGREEMENT, lobby=False, secret_generated=True, adhoc=True,
            e2ee=self.server.adhoc_e2ee,
        )

    @classmethod
    def default(cls) -> GroupsConfig:
        """The embedded configuration used when no file is given (fresh secrets on every call)."""
        return _parse(tomllib.loads(_DEFAULT_TOML), None)


def load_groups(path: Path | str) -> GroupsConfig:
    """Read and validate a groups TOML file; raises GroupsConfigError with file/group/field."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise GroupsConfigError("file not found", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise GroupsConfigError(f"not valid TOML: {exc}", path=path) from None
    except OSError as exc:
        raise GroupsConfigError(f"cannot read: {exc}", path=path) from None
    return _parse(data, path)


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "a table" if isinstance(value, dict) else type(value).__name__
    )


def _unknown(table: dict[str, Any], allowed: frozenset[str]) -> str | None:
    unknown = sorted(set(table) - allowed)
    if not unknown:
        return None
    return f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"


def _parse(data: dict[str, Any], path: Path | None) -> GroupsConfig:
    problem = _unknown(data, _TOP_KEYS)
    if problem:
        raise GroupsConfigError(problem + " (groups are [[group]] tables)", path=path)

    server_data = data.get("server", {})
    if not isinstance(server_data, dict):
        raise GroupsConfigError(
            f"must be a table, got {_type_name(server_data)}", path=path, field="[server]"
        )
    problem = _unknown(server_data, _SERVER_KEYS)
    if problem:
        raise GroupsConfigError(problem, path=path, group="[server]")
    adhoc = server_data.get("allow_adhoc_rooms", True)
    if not isinstance(adhoc, bool):
        raise GroupsConfigError(
            f"must be true or false, got {_type_name(adhoc)}",
            path=path,
            group="[server]",
            field="allow_adhoc_rooms",
        )
    resources = server_data.get("crisis_resources", DEFAULT_CRISIS_RESOURCES)
    if not isinstance(resources, str) or not resources.strip():
        raise GroupsConfigError(
            "must be a non-empty string (facilitators see it with every safety alert)",
            path=path,
            group="[server]",
            field="crisis_resources",
        )
    adhoc_e2ee = server_data.get("adhoc_e2ee", False)
    if not isinstance(adhoc_e2ee, bool):
        raise GroupsConfigError(f"must be true or false, got {_type_name(adhoc_e2ee)}", path=path,
                                group="[server]", field="adhoc_e2ee")
    server = ServerSettings(allow_adhoc_rooms=adhoc, crisis_resources=resources.strip(), adhoc_e2ee=adhoc_e2ee)

    raw_groups = data.get("group", [])
    if not isinstance(raw_groups, list):
        raise GroupsConfigError(
            f"must be an array of tables written [[group]], got {_type_name(raw_groups)}",
            path=path,
            field="group",
        )
    groups: list[Group] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_groups, 1):
        group = _parse_group(raw, index, path)
        if group.slug in seen:
            raise GroupsConfigError(
                f"duplicate slug {group.slug!r}, already used by group #{seen[group.slug]}",
                path=path,
                group=f"group #{index}",
                field="slug",
            )
        seen[group.slug] = index
        groups.append(group)
    if not groups and not server.allow_adhoc_rooms:
        raise GroupsConfigError(
            "no [[group]] defined and allow_adhoc_rooms = false, so nobody could join any room",
            path=path,
            group="[server]",
            field="allow_adhoc_rooms",
        )
    return GroupsConfig(server=server, groups=tuple(groups), source=path)


def _parse_group(raw: object, index: int, path: Path | None) -> Group:
    label = f"group #{index}"
    if not isinstance(raw, dict):
        raise GroupsConfigError(f"must be a table, got {_type_name(raw)}", path=path, group=label)
    slug = raw.get("slug")
    if isinstance(slug, str) and slug:
        label = f"group #{index} ({slug!r})"

    def fail(field_name: str, message: str) -> GroupsConfigError:
        return GroupsConfigError(message, path=path, group=label, field=field_name)

    problem = _unknown(raw, _GROUP_KEYS)
    if problem:
        raise GroupsConfigError(problem, path=path, group=label)
    for name in _REQUIRED:
        if name not in raw:
            raise fail(name, "required field is missing")

    texts: dict[str, str] = {}
    for name, limit in _TEXT_LIMITS.items():
        if name not in raw:
            continue
        value = raw[name]
        if not isinstance(value, str):
            raise fail(name, f"must be a string, got {_type_name(value)}")
        value = value.strip()
        if name in _REQUIRED and not value:
            raise fail(name, "must not be empty")
        if len(value) > limit:
            raise fail(name, f"must be at most {limit} characters, got {len(value)}")
        texts[name] = value
    if not SLUG_RE.match(texts["slug"]):
        raise fail(
            "slug",
            f"{texts['slug']!r} is not a valid slug: use 1-40 characters a-z, 0-9 and '-', "
            "not starting or ending with '-'",
        )

    max_participants = raw.get("max_participants", 12)
    if isinstance(max_participants, bool) or not isinstance(max_participants, int):
        raise fail("max_participants", f"must be an integer, got {_type_name(max_participants)}")
    if not MIN_PARTICIPANTS <= max_participants <= MAX_PARTICIPANTS:
        raise fail(
            "max_participants",
            f"must be an integer from {MIN_PARTICIPANTS} to {MAX_PARTICIPANTS}, got {max_participants}",
        )

    language = raw.get("language", "en")
    if not isinstance(language, str) or not LANGUAGE_RE.match(language):
        raise fail("language", f'must be a lower-case ISO 639 code such as "en" or "es", got {language!r}')

    lobby = raw.get("lobby", True)
    if not isinstance(lobby, bool):
        raise fail("lobby", f"must be true or false, got {_type_name(lobby)}")

    secret = raw.get("facilitator_secret")
    generated = secret is None
    if generated:
        secret = generate_secret()
    elif not isinstance(secret, str):
        raise fail("facilitator_secret", f"must be a string, got {_type_name(secret)}")
    elif len(secret) < MIN_SECRET_LENGTH or any(c.isspace() for c in secret):
        # Never echo the secret itself into an error message or log.
        raise fail(
            "facilitator_secret",
            f"must be at least {MIN_SECRET_LENGTH} characters without spaces "
            "(or leave it out to have one generated at start)",
        )

    e2ee = raw.get("e2ee", False)
    if not isinstance(e2ee, bool):
        raise fail("e2ee", f"must be true or false, got {_type_name(e2ee)}")

    phrases = raw.get("safety_phrases", "")
    if not isinstance(phrases, str):
        raise fail("safety_phrases", f"must be a path to a phrase file, got {_type_name(phrases)}")
    if phrases:
        resolved = Path(phrases).expanduser()
        if not resolved.is_absolute() and path is not None:  # relative to the config file, wherever it is run from
            resolved = path.parent / resolved
        if not resolved.is_file():
            raise fail("safety_phrases", f"no such file: {resolved}")
        phrases = str(resolved)

    return Group(
        slug=texts["slug"],
        name=texts["name"],
        agreement=texts["agreement"],
        topic=texts.get("topic", ""),
        description=texts.get("description", ""),
        schedule=texts.get("schedule", ""),
        max_participants=max_participants,
        language=language,
        lobby=lobby,
        facilitator_secret=secret,
        secret_generated=generated,
        safety_phrases=phrases,
        e2ee=e2ee,
    )


def groups_problems(data: dict[str, Any], path: Path | None) -> list[GroupsConfigError]:
    """Every problem in a parsed groups document, not just the first (for `peerwell check-config`)."""
    problems: list[GroupsConfigError] = []
    raw_groups = data.get("group", [])
    try:
        _parse({k: v for k, v in data.items() if k != "group"} | {"group": []}, path)
    except GroupsConfigError as exc:
        if "no [[group]] defined" not in str(exc) or not raw_groups:
            problems.append(exc)
    if not isinstance(raw_groups, list):
        problems.append(GroupsConfigError(f"must be an array of tables written [[group]], got {_type_name(raw_groups)}",
                                          path=path, field="group"))
        return problems
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_groups, 1):
        try:
            group = _parse_group(raw, index, path)
        except GroupsConfigError as exc:
            problems.append(exc)
            continue
        if group.slug in seen:
            problems.append(GroupsConfigError(
                f"duplicate slug {group.slug!r}, already used by group #{seen[group.slug]}",
                path=path, group=f"group #{index}", field="slug"))
        seen[group.slug] = index
    return problems
