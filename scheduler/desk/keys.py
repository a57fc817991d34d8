"""Rotating the credentials key as the desk needs it: the accounts' credentials and the webhooks'
secrets re-sealed in one transaction between the new key's writing and its taking over (the steps of
``vault.rotate``, with the webhooks added), and the rotation in the audit log."""

from __future__ import annotations

from datetime import datetime

from config.settings import get_settings
from scheduler.core import vault
from scheduler.core.db import session_scope
from scheduler.desk import audit, webhooks
from scheduler.desk.access import Actor, require_everywhere


def rotate(actor: Actor, now: datetime) -> tuple[int, int]:
    """(accounts, webhooks) re-sealed. If anything fails the new key stays beside the old one, both
    open, and the next run reuses it (as ``vault.rotate``)."""
    require_everywhere(actor, "admin", "keys rotate")
    settings = get_settings()
    vault.begin_rotation(settings)
    with session_scope() as s:
        accounts = vault.reseal_all(s)
        hooks = webhooks.reseal_all(s)
        audit.record(s, actor, "keys.rotate", "key", "credentials", now, accounts=accounts, webhooks=hooks)
    vault.finish_rotation(settings)
    return accounts, hooks
