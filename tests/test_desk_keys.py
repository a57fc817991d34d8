"""A key rotation re-seals the webhooks' secrets with the accounts' credentials: a hook keeps signing
with the secret it was given, and the old key opens nothing any more."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from config.settings import get_settings
from scheduler.core import vault
from scheduler.core.db import migrate, prepare_data_dir, session_scope
from scheduler.core.models import utcnow
from scheduler.desk import keys, webhooks
from scheduler.desk.access import Actor
from scheduler.desk.models import AuditEntry, Webhook
from tests.conftest import Env
from tests.test_keys import keyfile_env  # noqa: F401 - the key in a file, as `keys rotate` needs


def test_rotation_reseals_webhook_secrets(keyfile_env: Env) -> None:  # noqa: F811
    prepare_data_dir(get_settings())  # what `crosspost init` does, in this process
    migrate()
    vault.ensure_key(get_settings())
    old_key = get_settings().key_file.read_bytes()
    with session_scope() as s:
        hook, secret = webhooks.create(s, Actor.cli(), "http://127.0.0.1:9/hook", utcnow())
        hook_id = hook.id
    assert keys.rotate(Actor.cli(), utcnow()) == (0, 1)
    with session_scope() as s:
        sealed = s.get(Webhook, hook_id).secret  # type: ignore[union-attr]
        rotation = s.query(AuditEntry).filter(AuditEntry.action == "keys.rotate").one()
    assert vault.unseal(sealed).get("secret") == secret
    try:
        Fernet(old_key.strip()).decrypt(sealed)
        opened_by_old = True
    except InvalidToken:
        opened_by_old = False
    assert not opened_by_old and rotation.change == {"accounts": 0, "webhooks": 1}
