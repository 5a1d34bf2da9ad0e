"""Settings: one TOML file + PEERWELL_* environment + flags, flag > environment > file > default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from peerwell.cli import build_parser
from peerwell.config import ConfigError, check_config, flags_from_args, load_settings

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[server]
port = 9000
host = "0.0.0.0"
allow_adhoc_rooms = false
log_format = "json"

[captions]
model = "tiny.en"
workers = 2

[ice]
port_range = "40000-40099"
announced_address = "203.0.113.7"

[turn]
urls = ["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"]
secret = "a-long-shared-secret-value"
ttl = 7200

[[group]]
slug = "tuesday"
name = "Tuesday circle"
agreement = "Be kind."
"""


def flags(*argv: str) -> dict:
    return flags_from_args(build_parser().parse_args(["serve", *argv]))


def test_file_settings_reach_the_server_config(tmp_path: Path) -> None:
    path = tmp_path / "peerwell.toml"
    path.write_text(GOOD)
    settings = load_settings(path, environ={})
    server = settings.server
    assert (server.host, server.port, server.ice_port_range, server.announced_address) == (
        "0.0.0.0", 9000, (40000, 40099), "203.0.113.7")
    assert server.turn is not None and server.turn.ttl == 7200 and len(server.turn.urls) == 2
    assert [g.slug for g in server.groups.groups] == ["tuesday"] and not server.groups.server.allow_adhoc_rooms
    assert (settings.captions.model, settings.captions.workers, settings.log_format) == ("tiny.en", 2, "json")
    # Each join gets its own credentials; nothing static is handed out.
    (relay,) = server.client_ice_servers("abc123")
    assert relay.username.endswith(":abc123") and relay.credential


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    path = tmp_path / "peerwell.toml"
    path.write_text(GOOD)
    env = {"PEERWELL_SERVER_PORT": "9100", "PEERWELL_CAPTIONS_WORKERS": "3", "PEERWELL_ICE_HOSTS": "10.0.0.5"}
    settings = load_settings(path, flags("--port", "9200"), environ=env)
    assert settings.server.port == 9200 and settings.sources["server.port"] == "flag"
    assert settings.captions.workers == 3 and settings.sources["captions.workers"] == "environment"
    assert settings.server.ice_hosts == ("10.0.0.5",)
    assert settings.server.host == "0.0.0.0" and settings.sources["server.host"] == str(path)
    assert settings.server.reconnect_grace == 20.0 and settings.sources["server.reconnect_grace"] == "default"
    # PEERWELL_CONFIG names the file when --config does not.
    assert load_settings(None, environ={"PEERWELL_CONFIG": str(path)}).server.port == 9000
    # A boolean flag given wins over the file; an absent one does not.
    assert load_settings(path, flags("--no-captions"), environ={}).captions.enabled is False
    assert load_settings(path, flags(), environ={}).captions.enabled is True


BAD = """
[server]
port = 70000
log_level = "LOUD"
allow_adhoc_rooms = "yes"
colour = "blue"

[ice]
port_range = "50000-40000"
announced_address = "not-an-ip"

[turn]
urls = ["http://turn.example.org"]
credential = "hunter2-secret-password"

[metrics]
enabled = true

[[group]]
slug = "Bad Slug"
name = "x"
agreement = "y"

[[group]]
slug = "big"
name = "A"
agreement = "y"
max_participants = 500

[[group]]
slug = "ok"
name = "A"
agreement = "y"

[[group]]
slug = "ok"
name = "B"
agreement = "y"
"""


def test_check_config_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    ok, lines = check_config(str(path), environ={})
    assert not ok
    text = "\n".join(lines)
    for expected in ("[server] port: must be an integer from 1 to 65535, got 70000", "log_level",
                     "allow_adhoc_rooms: must be true or false", "unknown key colour",
                     "first port 50000 is above last port 40000",
                     "must be an IP address", "must start with stun:, turn: or turns:", "unknown table [metrics]",
                     "'Bad Slug' is not a valid slug", "max_participants", "duplicate slug 'ok'",
                     "turn credentials are set but turn.urls is empty"):
        assert expected in text, f"missing {expected!r} in:\n{text}"
    assert "hunter2" not in text
    assert len(lines) >= 12


def test_cross_checks_name_both_settings(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError) as info:
        load_settings(None, flags("--tls-cert", str(cert), "--turn", "turn:t.example.org"), environ={})
    problems = "\n".join(info.value.problems)
    assert "tls_cert and server.tls_key go together" in problems
    assert "turn.urls needs turn.secret" in problems


def test_check_config_command_exit_status_and_output(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    ran = subprocess.run([sys.executable, "-m", "peerwell.cli", "check-config", str(good)], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "OK (1 group(s)" in ran.stdout and "turn.secret = (hidden)" in ran.stdout
    assert "a-long-shared-secret-value" not in ran.stdout
    ran = subprocess.run([sys.executable, "-m", "peerwell.cli", "check-config", str(bad)], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=60)
    assert ran.returncode == 1 and ran.stderr.count("error: ") >= 12


def test_the_shipped_example_files_are_valid() -> None:
    for path in (ROOT / "docker" / "groups.toml", ROOT / "docker" / "peerwell.toml"):
        if path.exists():
            ok, lines = check_config(str(path), environ={})
            assert ok, lines


def test_allowed_origins_come_from_flags_environment_or_file(tmp_path: Path) -> None:
    from peerwell.config import load_settings

    assert load_settings(None, {}, environ={}).server.allowed_origins == ()
    from_flag = load_settings(None, {"server.allowed_origins": ["https://intranet.example.org/"]}, environ={})
    assert from_flag.server.allowed_origins == ("https://intranet.example.org",)
    env = {"PEERWELL_SERVER_ALLOWED_ORIGINS": "https://a.example, https://b.example:8443"}
    from_env = load_settings(None, {}, environ=env)
    assert from_env.server.allowed_origins == ("https://a.example", "https://b.example:8443")
    from peerwell.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"server.allowed_origins": ["intranet.example.org"]}, environ={})
    assert any("must start with" in problem for problem in refused.value.problems)


def test_workers_default_to_one_without_redis_and_more_need_it() -> None:
    import os

    assert load_settings(None, {}, environ={}).workers == 1  # `make serve`: one process, no Redis
    with_redis = load_settings(None, {}, environ={"PEERWELL_SERVER_REDIS": "redis://:pw@10.0.0.2:6379/0"})
    assert with_redis.workers == (os.cpu_count() or 1) and with_redis.redis == "redis://:pw@10.0.0.2:6379/0"
    assert with_redis.node_address == "127.0.0.1"
    with pytest.raises(ConfigError) as info:
        load_settings(None, flags("--workers", "2"), environ={"PEERWELL_SERVER_REDIS": "http://x"})
    problems = "\n".join(info.value.problems)
    assert "server.workers above 1 needs server.redis" in problems
    assert "PEERWELL_SERVER_REDIS: invalid value (hidden)" in problems  # the URL may hold a password


def test_a_groups_own_phrase_file_is_read_relative_to_the_config_and_checked(tmp_path: Path) -> None:
    (tmp_path / "phrases").mkdir()
    (tmp_path / "phrases" / "good.toml").write_text('language = "es"\n[[rule]]\ncategory = "self_harm"\n'
                                                     'patterns = ["me voy a cortar"]\n')
    (tmp_path / "phrases" / "bad.toml").write_text('[[rule]]\ncategory = "Not Valid"\npatterns = ["x"]\n')
    path = tmp_path / "peerwell.toml"
    path.write_text(GOOD + 'safety_phrases = "phrases/good.toml"\n')
    group = load_settings(path, environ={}).server.groups.get("tuesday")
    assert group is not None and group.safety_phrases == str(tmp_path / "phrases" / "good.toml")

    path.write_text(GOOD + 'safety_phrases = "phrases/bad.toml"\n')
    with pytest.raises(ConfigError) as bad:
        load_settings(path, environ={})
    assert any("'tuesday': safety_phrases" in p and "category" in p for p in bad.value.problems), bad.value.problems
    path.write_text(GOOD + 'safety_phrases = "phrases/missing.toml"\n')
    with pytest.raises(ConfigError) as missing:
        load_settings(path, environ={})
    assert any("safety_phrases: no such file" in p for p in missing.value.problems), missing.value.problems


def test_trusted_proxies_and_socket_limits_come_from_flags_environment_or_file(tmp_path: Path) -> None:
    from peerwell.config import ConfigError, load_settings

    default = load_settings(None, {}, environ={}).server
    assert default.trusted_proxies == () and default.proxy_header == "x-forwarded-for"
    assert default.sockets_per_address == 32 and default.adhoc_rooms_per_address == 5
    path = tmp_path / "peerwell.toml"
    path.write_text('[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\nproxy_header = "Forwarded"\n'
                    "sockets_per_address = 8\nadhoc_rooms_per_address = 2\n")
    from_file = load_settings(path, {}, environ={}).server
    assert from_file.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8") and from_file.proxy_header == "forwarded"
    assert from_file.sockets_per_address == 8 and from_file.adhoc_rooms_per_address == 2
    env = {"PEERWELL_SERVER_TRUSTED_PROXIES": "192.0.2.1, 2001:db8::/32", "PEERWELL_SERVER_SOCKETS_PER_ADDRESS": "4"}
    from_env = load_settings(path, {}, environ=env).server
    assert from_env.trusted_proxies == ("192.0.2.1/32", "2001:db8::/32") and from_env.sockets_per_address == 4
    from_flag = load_settings(path, {"server.trusted_proxies": ["172.16.0.0/12"]}, environ=env).server
    assert from_flag.trusted_proxies == ("172.16.0.0/12",)
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"server.trusted_proxies": ["proxy.example.org"], "server.proxy_header": "X-Real-IP"},
                      environ={})
    assert len(refused.value.problems) == 2
