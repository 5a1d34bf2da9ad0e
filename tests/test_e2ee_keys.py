"""The browser's key derivations (web/static/e2ee/keys.js) are the documented ones: PBKDF2 with the stated salt
and iterations, HKDF for epoch 0 and the media keys, as a second implementation (Python) computes them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from tests.support import sframe

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import * as k from "%s";
const secret = await k.secretFromPassphrase("river stones and quiet water", "sealed-circle");
const epoch0 = await k.firstEpochSecret(secret, "sealed-circle");
const media = await k.hkdf(epoch0, new Uint8Array(0), "peerwell-e2ee-v1 media|abc|camera", 44);
const link = k.secretFromLink(k.b64url(secret));
process.stdout.write(JSON.stringify({ secret: k.b64url(secret), epoch0: k.b64url(epoch0), media: k.b64url(media),
  link: link && k.b64url(link), short: k.secretFromLink("abc"), code: await k.fingerprint(epoch0),
  iterations: k.PBKDF2_ITERATIONS }));
"""


def test_derivations_match_the_documented_scheme(tmp_path: Path) -> None:
    script = tmp_path / "keys.mjs"
    script.write_text(SCRIPT % (ROOT / "web" / "static" / "e2ee" / "keys.js").as_uri())
    got = json.loads(subprocess.run(["node", str(script)], capture_output=True, text=True, check=True,
                                    timeout=120).stdout)
    assert got["iterations"] == 600_000
    secret = hashlib.pbkdf2_hmac("sha256", b"river stones and quiet water", b"peerwell-e2ee-v1|sealed-circle", 600_000)
    assert sframe.unb64url(got["secret"]) == secret
    epoch0 = sframe.first_epoch_secret(secret, "sealed-circle")
    assert sframe.unb64url(got["epoch0"]) == epoch0
    key, salt = sframe.media_key(epoch0, "abc", "camera")
    assert sframe.unb64url(got["media"]) == key + salt
    assert got["link"] == got["secret"] and got["short"] is None
    assert len(got["code"].split()) == 6
    assert "600,000" in (ROOT / "docs" / "architecture.md").read_text()
