"""`peerwell serve --tls-cert/--tls-key`: the page over HTTPS and signaling over WSS, with a certificate the
test makes for itself; a member joins over it and media flows."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import os
import shutil
import ssl
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.async_api import async_playwright

from sfu import aiortc_adapter
from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient, encode_vp8_clip
from tests.support.browser import (
    CHROMIUM,
    TILE_STATE,
    chromium_args,
    join,
    new_page,
    poll,
    require_loopback_only_namespace,
    uncaught,
    write_tone_wav,
)
from tests.support.serve import ROOT, free_port, open_rooms_settings, text


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peerwell test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_and_wss_with_a_test_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port, log = free_port(), tmp_path / "server.log"
    with log.open("wb") as out:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerwell.cli", "serve", "--config", str(open_rooms_settings(tmp_path)),
            "--port", str(port), "--ice-host", "127.0.0.1",
            "--no-captions", "--tls-cert", str(cert), "--tls-key", str(key), cwd=ROOT, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while "peerwell is running" not in text(log):
            assert server.returncode is None and time.monotonic() < deadline, text(log)
            await asyncio.sleep(0.1)
        assert f"https://127.0.0.1:{port}" in text(log)
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/", ssl=trust) as page:
                assert page.status == 200 and "<html" in (await page.text()).lower()
            # Plain HTTP on the TLS port is not served.
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as plain:
                    assert plain.status >= 400
            except aiohttp.ClientError:
                pass
            # A client that does not trust the certificate is refused.
            try:
                async with http.get(f"https://127.0.0.1:{port}/healthz") as untrusted:
                    raise AssertionError(f"untrusted certificate accepted: {untrusted.status}")
            except aiohttp.ClientConnectorCertificateError:
                pass

        aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
        url = f"wss://127.0.0.1:{port}/ws"
        alice = RoomClient(url, "tls-room", "Alice", video_frames=encode_vp8_clip(frames=60), tag=1, ssl=trust)
        bob = RoomClient(url, "tls-room", "Bob", ssl=trust)
        try:
            await alice.join()
            await bob.join()
            deadline = time.monotonic() + 20
            while bob.count_from(alice.participant_id, "video") < 10:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        finally:
            await alice.leave()
            await bob.leave()
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 15)


def test_a_key_that_does_not_match_the_certificate_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess

    cert, _ = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = self_signed(other)
    ran = subprocess.run([sys.executable, "-m", "peerwell.cli", "serve", "--no-captions", "--tls-cert", str(cert),
                          "--tls-key", str(wrong_key), "--port", str(free_port())], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert ran.returncode == 2 and "cannot use TLS certificate" in ran.stderr


def spki_pin(cert_path: Path) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list takes: trust exactly this key, nothing else."""
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode()


@pytest.mark.browser
async def test_browsers_join_over_https_and_wss(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = create_app(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"https://127.0.0.1:{port}"
    try:
        async with async_playwright() as playwright:
            require_loopback_only_namespace()
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[*chromium_args(write_tone_wav(tmp_path / "tone.wav")),
                      f"--ignore-certificate-errors-spki-list={spki_pin(cert)}"])
            try:
                alice = await new_page(browser, base)
                await join(alice, "Alice", room="tls-browsers", mic=True, camera=True)
                assert await alice.evaluate("window.isSecureContext && location.protocol") == "https:"
                bob = await new_page(browser, base)
                await join(bob, "Bob", room="tls-browsers", mic=True, camera=True)
                await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0 and v["time"] > 0,
                           timeout=30)
                assert (await bob.evaluate("window.peerwell.call.signaling.ws.url")).startswith("wss://")
                assert not uncaught(alice, bob)
            finally:
                await browser.close()
    finally:
        await runner.cleanup()


async def test_members_join_through_caddy_as_the_documented_reverse_proxy(tmp_path: Path) -> None:
    """Caddy terminates TLS and forwards HTTP and the WebSocket upgrade to a plain-HTTP peerwell."""
    assert shutil.which("caddy"), "Caddy is not installed (Debian package caddy; .ci/run installs it)"
    cert, key = self_signed(tmp_path)
    peerwell_port, proxy_port = free_port(), free_port()
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(f"""{{
\tadmin off
\tauto_https disable_redirects
}}

https://127.0.0.1:{proxy_port} {{
\ttls {cert} {key}
\t@internal path /metrics
\trespond @internal 404
\treverse_proxy 127.0.0.1:{peerwell_port}
}}
""")
    log = tmp_path / "server.log"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with log.open("wb") as out:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerwell.cli", "serve", "--config", str(open_rooms_settings(tmp_path)), "--port",
            str(peerwell_port), "--ice-host", "127.0.0.1",
            "--no-captions", "--public-url", f"https://127.0.0.1:{proxy_port}", cwd=ROOT, stdout=out, stderr=out)
        proxy = await asyncio.create_subprocess_exec(
            "caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile", stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 60
        while "peerwell is running" not in text(log):
            assert server.returncode is None and time.monotonic() < deadline, text(log)
            await asyncio.sleep(0.1)
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"https://127.0.0.1:{proxy_port}/healthz", ssl=trust) as health:
                        if health.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proxy.returncode is None and time.monotonic() < deadline, text(log)
                await asyncio.sleep(0.2)
            async with http.get(f"https://127.0.0.1:{proxy_port}/metrics", ssl=trust) as hidden:
                assert hidden.status == 404
        aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
        url = f"wss://127.0.0.1:{proxy_port}/ws"
        alice = RoomClient(url, "proxy-room", "Alice", video_frames=encode_vp8_clip(frames=60), tag=1, ssl=trust)
        bob = RoomClient(url, "proxy-room", "Bob", ssl=trust)
        try:
            await alice.join()
            await bob.join()
            while bob.count_from(alice.participant_id, "video") < 10:
                assert time.monotonic() < deadline + 20
                await asyncio.sleep(0.1)
        finally:
            await alice.leave()
            await bob.leave()
        assert f"https://127.0.0.1:{proxy_port}/#room=proxy-room&secret=" in text(log), "links name the public URL"
    finally:
        for process in (proxy, server):
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)
