"""Generated facilitator secrets that survive restarts, so a bookmarked facilitator link keeps working.

A group without `facilitator_secret` in the config gets one generated once and kept in the server's state
directory (`facilitator-secrets.json`, readable by the owner only). Nothing else is ever written there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from sfu.room.groups import Group, GroupsConfig

FILE_NAME = "facilitator-secrets.json"


class SecretsStoreError(Exception):
    pass


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SecretsStoreError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise SecretsStoreError(f"{path} is not a JSON object of group slug -> secret")
    return data


def _save(path: Path, secrets: dict[str, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(secrets, out, indent=2, sort_keys=True)
        os.replace(temporary, path)
    except OSError as exc:
        raise SecretsStoreError(f"cannot write {path}: {exc}") from None


def keep_generated_secrets(groups: GroupsConfig, directory: Path) -> GroupsConfig:
    """Groups whose secret was generated take the one kept in `directory` (storing new ones first)."""
    path = directory / FILE_NAME
    stored = _load(path)
    changed = False
    kept: list[Group] = []
    for group in groups.groups:
        if group.secret_generated:
            if group.slug not in stored:
                stored[group.slug] = group.facilitator_secret
                changed = True
            group = dataclasses.replace(group, facilitator_secret=stored[group.slug])
        kept.append(group)
    if changed:
        _save(path, stored)
    return dataclasses.replace(groups, groups=tuple(kept))


def facilitator_link(base_url: str, group: Group) -> str:
    return f"{base_url.rstrip('/')}/#room={group.slug}&secret={group.facilitator_secret}"
