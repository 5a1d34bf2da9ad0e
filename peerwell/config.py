"""Every server setting, from one TOML file, the environment and command-line flags.

Precedence, highest first: a command-line flag, then a ``PEERWELL_*`` environment variable, then the
TOML file (``--config FILE`` or ``PEERWELL_CONFIG``), then the default below. The file holds the server
settings in ``[server]``, ``[captions]``, ``[ice]`` and ``[turn]`` beside the groups (``[server]`` keys of
sfu/room/groups.py and ``[[group]]`` tables). Every problem is collected before anything fails, so
``peerwell check-config FILE`` can report them all at once. Secrets never appear in error messages.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.whisper import DEFAULT_MODEL
from sfu import messages
from sfu.config import ADHOC_ROOMS_PER_ADDRESS, SOCKETS_PER_ADDRESS, ServerConfig, parse_ice_server
from sfu.room.groups import _SERVER_KEYS as GROUP_SERVER_KEYS
from sfu.room.groups import GroupsConfig, GroupsConfigError, _parse, groups_problems
from sfu.turn import DEFAULT_TTL, TurnRelay

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- value parsers: TOML gives typed values, the environment and flags give text ------------------

def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    return value


def _integer(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"must be an integer from {low} to {high}, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer from {low} to {high}, got {value!r}")
        return value
    return parse


def _number(low: float, high: float) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"must be a number from {low} to {high}, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ValueError(f"must be a number from {low} to {high}, got {value!r}")
        return float(value)
    return parse


def _boolean(value: object) -> bool:
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if not isinstance(value, str) or value.upper() not in [c.upper() for c in choices]:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return next(c for c in choices if c.upper() == value.upper())
    return parse


def _address(value: object) -> str:
    try:
        return str(ipaddress.ip_address(_text(value)))
    except ValueError:
        raise ValueError(f"must be an IP address, got {value!r}") from None


def _network(value: object) -> str:
    try:
        return str(ipaddress.ip_network(_text(value), strict=False))
    except ValueError:
        raise ValueError(f"must be an IP address or network (10.0.0.0/8), got {value!r}") from None


def _list_of(item: Callable[[object], Any]) -> Callable[[object], tuple[Any, ...]]:
    def parse(value: object) -> tuple[Any, ...]:
        if isinstance(value, str):  # environment: comma-separated
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be an array, got {value!r}")
        return tuple(item(v) for v in value)
    return parse


def _port_range(value: object) -> tuple[int, int]:
    if isinstance(value, str) and "-" in value:
        first, _, last = value.partition("-")
        value = [first.strip(), last.strip()]
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f'must be "FIRST-LAST" or [FIRST, LAST], got {value!r}')
    first, last = (_integer(1024, 65535)(v) for v in value)
    if first > last:
        raise ValueError(f"first port {first} is above last port {last}")
    return first, last


def _url(value: object) -> str:
    text = _text(value).rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {value!r}")
    return text


def _redis_url(value: object) -> str:
    text = _text(value)
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")  # the URL may hold a password
    return text


def _ice_url(value: object) -> str:
    return parse_ice_server(_text(value)).urls[0]


def _existing_file(value: object) -> str:
    path = Path(_text(value))
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    try:
        path.open("rb").close()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return str(path)


@dataclass(frozen=True)
class Setting:
    key: str  # "table.name" in the TOML file
    parse: Callable[[object], Any]
    default: Any
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return "PEERWELL_" + self.key.replace(".", "_").upper()

    @property
    def dest(self) -> str:
        return self.key.replace(".", "_")


SETTINGS: tuple[Setting, ...] = (
    Setting("server.host", _text, "127.0.0.1", "address to listen on"),
    Setting("server.port", _integer(1, 65535), 8080, "port to listen on"),
    Setting("server.public_url", _url, None, "the address people open, e.g. https://peerwell.example.org (for "
            "the facilitator links printed; default: from host and port)"),
    Setting("server.tls_cert", _existing_file, None, "PEM certificate chain: serve HTTPS and WSS directly"),
    Setting("server.tls_key", _existing_file, None, "PEM private key for tls_cert"),
    Setting("server.reconnect_grace", _number(0, 600), 20.0, "seconds a dropped participant keeps their place"),
    Setting("server.shutdown_grace", _number(0, 7), 5.0,
            "seconds in-flight captions get to finish on SIGTERM (the process exits within 10 s)"),
    Setting("server.restart_key", _text, None, "secret that signs restart tickets, so members keep their place "
            "across a restart (same value for the next process; default: none, members rejoin afresh)",
            secret=True),
    Setting("server.allowed_origins", _list_of(_url), (), "other sites whose pages may open /ws, e.g. "
            "https://intranet.example.org (the server's own origin is always allowed)"),
    Setting("server.trusted_proxies", _list_of(_network), (), "reverse proxies (addresses or networks, e.g. "
            "127.0.0.1 or 10.0.0.0/8) whose client-address header is believed; default none: every limit and "
            "ban keys on the TCP peer"),
    Setting("server.proxy_header", _choice("X-Forwarded-For", "Forwarded"), "X-Forwarded-For",
            "the header the trusted proxies set (the other is ignored: a client could write it)"),
    Setting("server.sockets_per_address", _integer(1, 100_000), SOCKETS_PER_ADDRESS,
            "open WebSockets one client address may hold, joined or not (more get HTTP 429)"),
    Setting("server.adhoc_rooms_per_address", _integer(1, 10_000), ADHOC_ROOMS_PER_ADDRESS,
            "ad-hoc rooms one client address may have open at once (rooms it opened that have not closed)"),
    Setting("server.workers", _integer(1, 64), None, "worker processes (nodes) on this machine, sharing the port: "
            "default one per core with server.redis, else 1 (more than 1 needs server.redis)"),
    Setting("server.redis", _redis_url, None, "Redis URL, e.g. redis://127.0.0.1:6379/0: nodes register there and "
            "rooms are placed on them (docs/architecture.md, Many rooms); default: none, one process alone",
            secret=True),
    Setting("server.node_address", _address, None, "address other nodes reach this machine's nodes at (routed "
            "joins; default server.host, or 127.0.0.1 when that is a wildcard)"),
    Setting("server.log_level", _choice(*LOG_LEVELS), "INFO", "peerwell's own log level (libraries: WARNING)"),
    Setting("server.log_format", _choice("text", "json"), "text", "text for a console, json for a log pipeline"),
    Setting("captions.enabled", _boolean, True, "transcribe speech into captions"),
    Setting("captions.model", _text, DEFAULT_MODEL, "Whisper model: a name (tiny.en, base, ...) or a directory"),
    Setting("captions.workers", _integer(1, 16), None, "Whisper decodes run side by side (default: one per core "
            "of this node's share, at most 4; the cores are shared out as CPU threads between them)"),
    Setting("captions.full_window", _boolean, False, "give Whisper its usual 30 s window per decode (slower)"),
    Setting("ice.hosts", _list_of(_address), (), "addresses offered as ICE host candidates (default: all but "
            "loopback)"),
    Setting("ice.port_range", _port_range, None, "UDP ports for host candidates, e.g. 40000-40199 (one per "
            "connected participant)"),
    Setting("ice.announced_address", _address, None, "public address offered instead of the bound one "
            "(server behind 1:1 NAT)"),
    Setting("ice.stun", _list_of(_ice_url), (), "STUN server URLs handed to browsers"),
    Setting("turn.urls", _list_of(_ice_url), (), "TURN URLs handed to browsers, e.g. turn:turn.example.org:3478"),
    Setting("turn.secret", _text, None, "shared secret with the relay (coturn static-auth-secret): "
            "short-lived credentials per join", secret=True),
    Setting("turn.ttl", _integer(60, 7 * 86400), DEFAULT_TTL, "seconds a handed-out TURN credential is valid"),
    Setting("turn.server_url", _ice_url, None, "TURN URL this server's own ICE agent uses (default: none)"),
    Setting("turn.username", _text, None, "static TURN username (instead of secret)"),
    Setting("turn.credential", _text, None, "static TURN password (instead of secret)", secret=True),
)
BY_KEY = {s.key: s for s in SETTINGS}
_TABLES = {"server", "captions", "ice", "turn"}


@dataclass(frozen=True)
class CaptionOptions:
    enabled: bool = True
    model: str = DEFAULT_MODEL
    workers: int | None = None  # decodes side by side; None: one per core (transcribe/decoders.py)
    nodes: int = 1  # nodes on this machine, which share its cores
    full_window: bool = False  # plain faster-whisper: 30 s encoder window per decode (see whisper_adapter)


@dataclass(frozen=True)
class Settings:
    server: ServerConfig
    captions: CaptionOptions
    tls: tuple[str, str] | None = None  # (certificate, key)
    public_url: str | None = None
    shutdown_grace: float = 5.0
    workers: int = 1  # nodes on this machine (resolved: one per core with Redis, else 1)
    redis: str | None = field(default=None, repr=False)
    node_address: str = "127.0.0.1"  # where other nodes reach this machine's nodes
    log_level: str = "INFO"
    log_format: str = "text"
    sources: dict[str, str] = field(default_factory=dict)  # key -> "flag" | "environment" | file | "default"
    values: dict[str, Any] = field(default_factory=dict, repr=False)  # key -> parsed value (secrets too)


def _read_file(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
    return {}


def _split_file(data: dict[str, Any], path: Path, problems: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(our settings by key, the groups document) from one TOML file."""
    ours: dict[str, Any] = {}
    groups_doc: dict[str, Any] = {}
    for table, content in data.items():
        if table == "group":
            groups_doc["group"] = content
            continue
        if table not in _TABLES:
            problems.append(f"{path}: unknown table [{table}]; allowed: {', '.join(sorted(_TABLES))}, [[group]]")
            continue
        if not isinstance(content, dict):
            problems.append(f"{path}: {table} must be a table")
            continue
        rest = {}
        for name, value in content.items():
            key = f"{table}.{name}"
            if key in BY_KEY:
                ours[key] = value
            elif table == "server" and name in GROUP_SERVER_KEYS:
                rest[name] = value  # the groups' server keys (allow_adhoc_rooms, crisis_resources)
            else:
                allowed = sorted(s.key.split(".")[1] for s in SETTINGS if s.key.startswith(table + "."))
                if table == "server":
                    allowed = sorted([*allowed, *GROUP_SERVER_KEYS])
                problems.append(f"{path}: [{table}] unknown key {name}; allowed: {', '.join(allowed)}")
        if table == "server":
            groups_doc["server"] = rest
    return ours, groups_doc


def load_settings(config_file: str | Path | None = None, flags: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults < file < environment < flags; raises ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    flags = flags or {}
    problems: list[str] = []
    config_file = config_file or environ.get("PEERWELL_CONFIG") or None
    file_values: dict[str, Any] = {}
    groups = GroupsConfig.default()
    path = Path(config_file) if config_file else None
    if path is not None:
        data = _read_file(path, problems)
        file_values, groups_doc = _split_file(data, path, problems)
        group_errors = groups_problems(groups_doc, path) if data else []
        problems += [str(e) for e in group_errors]
        if data and not group_errors:
            groups = _parse(groups_doc, path)
            problems += group_phrase_problems(groups)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        table, name = setting.key.split(".")
        candidates = [(f"flag {_FLAG_NAMES.get(setting.key, '--no-captions')}", flags.get(setting.key)),
                      (f"environment {setting.env}", environ.get(setting.env)),
                      (f"{path} [{table}] {name}", file_values.get(setting.key))]
        for source, raw in candidates:
            if raw is None or raw == () or raw == []:
                continue
            try:
                values[setting.key] = setting.parse(raw)
            except ValueError as exc:
                message = str(exc)
                if setting.secret:
                    message = "invalid value (hidden)"
                problems.append(f"{source}: {message}")
                values[setting.key] = setting.default
            sources[setting.key] = source.split(" ")[0]
            break
        else:
            values[setting.key] = setting.default
            sources[setting.key] = "default"

    problems += _cross_checks(values)
    if problems:
        raise ConfigError(problems)
    return _build(values, groups, sources)


def _cross_checks(values: dict[str, Any]) -> list[str]:
    problems = []
    if (values["server.tls_cert"] is None) != (values["server.tls_key"] is None):
        problems.append("server.tls_cert and server.tls_key go together: give both or neither")
    turn_urls, secret = values["turn.urls"], values["turn.secret"]
    static = values["turn.username"] is not None or values["turn.credential"] is not None
    if secret is not None and static:
        problems.append("turn: give either secret (short-lived credentials) or username/credential, not both")
    if turn_urls and secret is None and not (values["turn.username"] and values["turn.credential"]):
        problems.append("turn.urls needs turn.secret (recommended) or turn.username and turn.credential")
    if (secret is not None or static) and not turn_urls:
        problems.append("turn credentials are set but turn.urls is empty")
    if values["turn.server_url"] is not None and secret is None:
        problems.append("turn.server_url needs turn.secret")
    if values["server.workers"] is not None and values["server.workers"] > 1 and values["server.redis"] is None:
        problems.append("server.workers above 1 needs server.redis: the workers place rooms through Redis")
    if values["ice.announced_address"] is not None and len(values["ice.hosts"]) > 1:
        problems.append("ice.announced_address binds one address: give at most one ice.hosts entry with it")
    return problems


def _build(values: dict[str, Any], groups: GroupsConfig, sources: dict[str, str]) -> Settings:
    ice_servers: list[messages.IceServer] = [parse_ice_server(url) for url in values["ice.stun"]]
    turn = None
    if values["turn.secret"] is not None:
        turn = TurnRelay(urls=values["turn.urls"], secret=values["turn.secret"], ttl=values["turn.ttl"],
                         server_url=values["turn.server_url"])
    else:
        ice_servers += [parse_ice_server(url, values["turn.username"], values["turn.credential"])
                        for url in values["turn.urls"]]
    server = ServerConfig(
        host=values["server.host"], port=values["server.port"], ice_hosts=values["ice.hosts"],
        ice_servers=tuple(ice_servers), turn=turn, ice_port_range=values["ice.port_range"],
        announced_address=values["ice.announced_address"], groups=groups,
        reconnect_grace=values["server.reconnect_grace"], restart_key=values["server.restart_key"],
        allowed_origins=values["server.allowed_origins"], trusted_proxies=values["server.trusted_proxies"],
        proxy_header=values["server.proxy_header"].lower(), sockets_per_address=values["server.sockets_per_address"],
        adhoc_rooms_per_address=values["server.adhoc_rooms_per_address"])
    captions = CaptionOptions(enabled=values["captions.enabled"], model=values["captions.model"],
                              workers=values["captions.workers"], nodes=_workers(values),
                              full_window=values["captions.full_window"])
    tls = (values["server.tls_cert"], values["server.tls_key"]) if values["server.tls_cert"] else None
    return Settings(server=server, captions=captions, tls=tls, public_url=values["server.public_url"],
                    shutdown_grace=values["server.shutdown_grace"], workers=_workers(values),
                    redis=values["server.redis"], node_address=_node_address(values),
                    log_level=values["server.log_level"], log_format=values["server.log_format"], sources=sources,
                    values=values)


def _workers(values: dict[str, Any]) -> int:
    if values["server.workers"] is not None:
        return values["server.workers"]
    # One Python process forwards on one core; without Redis nothing could route between processes.
    return (os.cpu_count() or 1) if values["server.redis"] else 1


def _node_address(values: dict[str, Any]) -> str:
    if values["server.node_address"]:
        return values["server.node_address"]
    host = values["server.host"]
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


# --- command line --------------------------------------------------------------------------------

# Flags kept from before this module (their names predate the TOML keys).
_FLAG_NAMES = {
    "server.host": "--host", "server.port": "--port", "server.public_url": "--public-url",
    "server.tls_cert": "--tls-cert", "server.tls_key": "--tls-key", "server.reconnect_grace": "--reconnect-grace",
    "server.shutdown_grace": "--shutdown-grace", "server.restart_key": "--restart-key",
    "server.allowed_origins": "--allowed-origin", "server.trusted_proxies": "--trusted-proxy",
    "server.proxy_header": "--proxy-header", "server.sockets_per_address": "--sockets-per-address",
    "server.adhoc_rooms_per_address": "--adhoc-rooms-per-address",
    "server.workers": "--workers", "server.redis": "--redis", "server.node_address": "--node-address",
    "server.log_level": "--log-level", "server.log_format": "--log-format",
    "captions.model": "--whisper-model", "captions.workers": "--caption-workers",
    "captions.full_window": "--whisper-full-window",
    "ice.hosts": "--ice-host", "ice.port_range": "--ice-port-range", "ice.announced_address": "--announced-address",
    "ice.stun": "--stun",
    "turn.urls": "--turn", "turn.secret": "--turn-secret", "turn.ttl": "--turn-ttl",
    "turn.server_url": "--turn-server-url", "turn.username": "--turn-username", "turn.credential": "--turn-credential",
}
_REPEATABLE = {"ice.hosts", "ice.stun", "turn.urls", "server.allowed_origins", "server.trusted_proxies"}


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; every default is None so an absent flag falls through to env/file."""
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="TOML file with server settings and groups (env PEERWELL_CONFIG)")
    for setting in SETTINGS:
        if setting.key == "captions.enabled":
            parser.add_argument("--no-captions", dest="captions_enabled", action="store_const", const=False,
                                default=None, help="run without captions (env PEERWELL_CAPTIONS_ENABLED=false)")
            continue
        flag = _FLAG_NAMES[setting.key]
        helptext = f"{setting.help} (env {setting.env}; file [{setting.key.replace('.', '] ', 1)})"
        if setting.parse is _boolean:
            parser.add_argument(flag, dest=setting.dest, action="store_const", const=True, default=None, help=helptext)
        elif setting.key in _REPEATABLE:
            parser.add_argument(flag, dest=setting.dest, action="append", default=None, metavar="VALUE",
                                help=helptext + "; repeatable")
        else:
            parser.add_argument(flag, dest=setting.dest, default=None, metavar="VALUE", help=helptext)


def flags_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {s.key: getattr(args, s.dest, None) for s in SETTINGS}


def check_config(path: str, environ: Mapping[str, str] | None = None) -> tuple[bool, list[str]]:
    """(ok, lines to print) for `peerwell check-config FILE` (the environment counts, flags do not)."""
    try:
        settings = load_settings(path, environ=environ)
    except ConfigError as exc:
        return False, [f"error: {p}" for p in exc.problems]
    groups = settings.server.groups
    lines = [f"{path}: OK ({len(groups.groups)} group(s); ad-hoc rooms "
             f"{'allowed' if groups.server.allow_adhoc_rooms else 'off'})"]
    for setting in SETTINGS:
        source = settings.sources.get(setting.key, "default")
        if source != "default":
            value = "(hidden)" if setting.secret else repr(settings.values[setting.key])
            lines.append(f"  {setting.key} = {value}  [{source}]")
    return True, lines


__all__ = ["SETTINGS", "CaptionOptions", "ConfigError", "GroupsConfigError", "Settings", "add_setting_flags",
           "check_config", "flags_from_args", "load_settings"]


def group_phrase_problems(groups: GroupsConfig) -> list[str]:
    """Each group's own phrase file read as the server will read it (phrases only: no model is loaded)."""
    from safety.detector import CrisisDetector, SafetyConfigError

    problems: list[str] = []
    for group in groups.groups:
        if group.safety_phrases:
            try:
                CrisisDetector.from_config(extra_phrases_file=group.safety_phrases, learned=False)
            except (SafetyConfigError, OSError) as exc:
                problems.append(f"group {group.slug!r}: safety_phrases: {exc}")
    return problems
