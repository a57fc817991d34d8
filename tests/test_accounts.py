"""The right account: `accounts add` and `accounts reauth` check the credentials' shape, then ask the
platform (its stand-in) whose they are, and refuse another account's, naming both. Handles are one
spelling per platform; every refusal is one line, a non-zero exit, and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters import adapter_class
from adapters.base import Credentials
from adapters.standins import StandIn, standin_class
from scheduler.core.credentials import to_ref
from scheduler.core.db import session_scope
from scheduler.core.models import Account, Delivery, utcnow
from scheduler.matrix import accounts
from tests.conftest import Env, free_port
from tests.factories import make_delivery
from tests.test_secrets import assert_no_leak


@pytest.fixture(scope="module")
def mastodon() -> Iterator[StandIn]:
    server = standin_class("mastodon")().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def telegram() -> Iterator[StandIn]:
    server = standin_class("telegram")().start()
    yield server
    server.stop()


def creds_file(tmp_path: Path, data: dict[str, str], name: str = "creds.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def rows() -> list[tuple[str, str, str | None]]:
    with session_scope() as s:
        return [(a.platform, a.handle, a.remote_id) for a in s.scalars(select(Account).order_by(Account.id))]


def stored_token(label: str, name: str = "access_token") -> str | None:
    with session_scope() as s:
        return to_ref(accounts.find(s, label)).credentials.get(name)


def refused(result: object, *needles: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    line = result.stderr.strip()  # type: ignore[attr-defined]
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


# -- accounts add ---------------------------------------------------------------------------------
def test_add_asks_the_platform_and_stores_its_id(sqlite_env: Env, mastodon: StandIn, tmp_path: Path) -> None:
    token = mastodon.add_account("newsroom")["access_token"]
    result = sqlite_env.cli("accounts", "add", "mastodon", "@NewsRoom", "--base-url", mastodon.url,
                            "--credentials-file", creds_file(tmp_path, {"access_token": token}),
                            "--language", "en-gb", "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)[0]
    assert (row["account"], row["language"]) == ("mastodon:newsroom", "en-GB")
    [(platform, handle, remote_id)] = rows()
    assert (platform, handle) == ("mastodon", "newsroom") and remote_id  # the platform's own id
    assert stored_token("mastodon:newsroom") == token
    assert_no_leak(result.stdout + result.stderr, token, where="accounts add output")
    # One account however it is spelt: found by any spelling, never added twice.
    shown = sqlite_env.cli("accounts", "show", "mastodon:@Newsroom", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)[0]["id"] == row["id"], shown.stderr
    again = sqlite_env.cli("accounts", "add", "mastodon", "newsroom", "--base-url", mastodon.url,
                           "--credentials-file", creds_file(tmp_path, {"access_token": token}))
    refused(again, "account: mastodon:newsroom already exists")
    assert len(rows()) == 1


def test_add_refuses_another_accounts_credentials_naming_both(sqlite_env: Env, mastodon: StandIn,
                                                              tmp_path: Path) -> None:
    other = mastodon.add_account("other")["access_token"]
    result = sqlite_env.cli("accounts", "add", "mastodon", "newsroom", "--base-url", mastodon.url,
                            "--credentials-file", creds_file(tmp_path, {"access_token": other}))
    refused(result, "credentials belong to mastodon:other, not mastodon:newsroom", "nothing was stored")
    assert rows() == []
    assert_no_leak(result.stderr, other, where="the refusal")


def test_add_refuses_a_telegram_bot_of_another_channel(sqlite_env: Env, telegram: StandIn,
                                                       tmp_path: Path) -> None:
    telegram.add_account("@newsroom")
    other_bot = telegram.add_account("@otherdesk")["bot_token"]
    result = sqlite_env.cli("accounts", "add", "telegram", "newsroom", "--base-url", telegram.url,
                            "--credentials-file", creds_file(tmp_path, {"bot_token": other_bot}))
    refused(result, "credentials:", "@newsroom", "nothing was stored")
    assert rows() == []
    assert_no_leak(result.stderr, other_bot, other_bot.partition(":")[2], where="the refusal")
    own = telegram.add_account("@newsroom")["bot_token"]
    ok = sqlite_env.cli("accounts", "add", "telegram", "NewsRoom", "--base-url", telegram.url,
                        "--credentials-file", creds_file(tmp_path, {"bot_token": own}))
    assert ok.returncode == 0, ok.stderr
    [(platform, handle, remote_id)] = rows()
    assert (platform, handle) == ("telegram", "@newsroom") and remote_id


@pytest.mark.parametrize(("case", "needles"), [
    ("no-base-url", ("base-url: required for mastodon",)),
    ("misspelt-key", ("credentials:", "acess_token")),
    ("token-with-space", ("credentials:", "access_token")),
    ("unknown-token", ("credentials: mastodon refused them",)),
    ("unreachable", ("mastodon: cannot ask", "nothing was stored")),
    ("bad-language", ("language:", "BCP-47")),
    ("bad-handle", ("handle:",)),
])
def test_add_refusals_store_nothing(sqlite_env: Env, mastodon: StandIn, tmp_path: Path, case: str,
                                    needles: tuple[str, ...]) -> None:
    token = mastodon.add_account("newsroom")["access_token"]
    data, base, handle, extra = {"access_token": token}, mastodon.url, "newsroom", []
    if case == "no-base-url":
        base = ""
    elif case == "misspelt-key":
        data = {"acess_token": token}
    elif case == "token-with-space":
        data = {"access_token": token[:10] + " " + token[10:]}
    elif case == "unknown-token":
        data = {"access_token": "tok-never-issued-0123456789"}
    elif case == "unreachable":
        base = f"http://127.0.0.1:{free_port()}"
    elif case == "bad-language":
        extra = ["--language", "english!"]
    elif case == "bad-handle":
        handle = "news/room"
    argv = ["accounts", "add", "mastodon", handle, "--credentials-file", creds_file(tmp_path, data), *extra]
    if base:
        argv += ["--base-url", base]
    result = sqlite_env.cli(*argv)
    refused(result, *needles)
    assert rows() == []
    assert_no_leak(result.stdout + result.stderr, token, where="the refusal")


# -- accounts reauth ------------------------------------------------------------------------------
def test_reauth_refuses_another_accounts_token_and_accepts_its_own(sqlite_env: Env, mastodon: StandIn,
                                                                   tmp_path: Path) -> None:
    first = mastodon.add_account("desk")["access_token"]
    added = sqlite_env.cli("accounts", "add", "mastodon", "desk", "--base-url", mastodon.url,
                           "--credentials-file", creds_file(tmp_path, {"access_token": first}))
    assert added.returncode == 0, added.stderr
    with session_scope() as s:
        account = accounts.find(s, "mastodon:desk")
        account.status = "auth_broken"
        blocked = make_delivery(s, account, utcnow(), state="blocked_auth").id
    other = mastodon.add_account("elsewhere")["access_token"]
    wrong = sqlite_env.cli("accounts", "reauth", "mastodon:desk",
                           "--credentials-file", creds_file(tmp_path, {"access_token": other}))
    refused(wrong, "mastodon:elsewhere", "not mastodon:desk", "nothing was stored")
    assert stored_token("mastodon:desk") == first
    with session_scope() as s:
        assert accounts.find(s, "mastodon:desk").status == "auth_broken"
        assert s.get(Delivery, blocked).state == "blocked_auth"  # type: ignore[union-attr]
    fresh = mastodon.add_account("desk")["access_token"]
    right = sqlite_env.cli("accounts", "reauth", "mastodon:@Desk",
                           "--credentials-file", creds_file(tmp_path, {"access_token": fresh}))
    assert right.returncode == 0, right.stderr
    assert "1 blocked deliveries are due again" in right.stdout
    assert stored_token("mastodon:desk") == fresh


def test_reauth_compares_the_platforms_id(sqlite_env: Env, mastodon: StandIn) -> None:
    """A stored account whose platform id is another's (re-registered under the same name) refuses
    credentials of the new holder of the name, though the handles match."""
    token = mastodon.add_account("renamed")["access_token"]
    with session_scope() as s:
        accounts.add(s, "mastodon", "renamed", Credentials({"access_token": "tok-old-0123456789"}),
                     base_url=mastodon.url, remote_id="999999")
    with pytest.raises(accounts.UserError) as caught:
        accounts.reauthorise("mastodon:renamed", {"access_token": token}, utcnow())
    assert "(id 999999)" in str(caught.value) and "mastodon:renamed" in str(caught.value)
    assert stored_token("mastodon:renamed") == "tok-old-0123456789"


def test_reauth_of_a_mastodon_account_without_base_url_needs_one(sqlite_env: Env, mastodon: StandIn,
                                                                 tmp_path: Path) -> None:
    """Accounts stored before the base URL was required: reauth asks for it instead of sending the
    token to a default instance, and stores it once the instance vouched for the token."""
    token = mastodon.add_account("legacy")["access_token"]
    with session_scope() as s:
        accounts.add(s, "mastodon", "legacy", Credentials({"access_token": "tok-old-0123456789"}))
    path = creds_file(tmp_path, {"access_token": token})
    refused(sqlite_env.cli("accounts", "reauth", "mastodon:legacy", "--credentials-file", path),
            "base-url: required for mastodon")
    ok = sqlite_env.cli("accounts", "reauth", "mastodon:legacy", "--credentials-file", path,
                        "--base-url", mastodon.url)
    assert ok.returncode == 0, ok.stderr
    with session_scope() as s:
        account = accounts.find(s, "mastodon:legacy")
        assert account.base_url == mastodon.url and account.remote_id


# -- accounts edit --------------------------------------------------------------------------------
def test_edit_changes_what_describes_the_account(sqlite_env: Env) -> None:
    with session_scope() as s:
        accounts.add(s, "mastodon", "editme", Credentials({"access_token": "tok-0123456789"}),
                     base_url="http://127.0.0.1:9", tags=["old"])
    ok = sqlite_env.cli("accounts", "edit", "mastodon:editme", "--name", "The Desk", "--tag", "EN",
                        "--tag", "#culture", "--tz", "Europe/Madrid", "--language", "zh-hans", "--json")
    assert ok.returncode == 0, ok.stderr
    row = json.loads(ok.stdout)[0]
    assert (row["name"], row["tags"], row["tz"], row["language"]) == \
        ("The Desk", ["en", "culture"], "Europe/Madrid", "zh-Hans")
    for argv, needle in ((["--tz", "Mars/Base"], "tz:"), (["--language", "12"], "language:"),
                         (["--tag", "no spaces"], "tag:"), ([], "nothing to change"),
                         (["--tag", "a", "--no-tags"], "tag:")):
        refused(sqlite_env.cli("accounts", "edit", "mastodon:editme", *argv), needle)
    cleared = sqlite_env.cli("accounts", "edit", "mastodon:editme", "--no-tags", "--language", "", "--json")
    assert cleared.returncode == 0, cleared.stderr
    row = json.loads(cleared.stdout)[0]
    assert (row["tags"], row["language"], row["tz"]) == ([], None, "Europe/Madrid")


@pytest.mark.parametrize(("tag", "expected"), [
    ("en", "en"), ("EN-gb", "en-GB"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419"),
    ("sl-rozaj-biske", "sl-rozaj-biske"), ("de-CH-x-phonebk", "de-CH-x-phonebk"),
])
def test_language_tags_are_read_in_their_usual_case(tag: str, expected: str) -> None:
    assert accounts.check_language(tag) == expected


@pytest.mark.parametrize("tag", ["", "e", "english", "en_GB", "en-", "12", "en-GB-" + "x" * 40, "en gb"])
def test_language_tags_that_are_not_bcp47_are_refused(tag: str) -> None:
    with pytest.raises(accounts.UserError):
        accounts.check_language(tag)


# -- every platform, through its stand-in ---------------------------------------------------------
ACCOUNTS = {  # platform: (the account, another account on the same platform)
    "mastodon": ("newsroom", "otherdesk"), "bluesky": ("newsroom.test", "otherdesk.test"),
    "telegram": ("@newsroom", "@otherdesk"), "x": ("newsroom", "otherdesk"),
    "facebook": ("newsroom", "otherdesk"), "instagram": ("newsroom", "otherdesk"),
    "threads": ("newsroom", "otherdesk"),
    "linkedin": ("urn:li:organization:2414183", "urn:li:organization:77"),
    "youtube": ("newsroom", "otherdesk"), "tiktok": ("newsroom", "otherdesk"),
}


@pytest.mark.parametrize("platform", list(ACCOUNTS))
def test_every_platform_refuses_another_accounts_credentials(sqlite_env: Env, platform: str) -> None:
    mine, theirs = ACCOUNTS[platform]
    server = standin_class(platform)().start()
    try:
        own, other = server.add_account(mine), server.add_account(theirs)
        with pytest.raises(accounts.UserError) as caught:
            accounts.connect(platform, mine, other, base_url=server.url)
        message = str(caught.value)
        assert "nothing was stored" in message and platform in message, message
        assert rows() == []
        account, verified = accounts.connect(platform, mine, own, base_url=server.url)
        assert verified, f"{platform}: whoami is not implemented"
        assert account.remote_id, f"{platform}: whoami gave no stable id"
        assert rows() == [(platform, account.handle, account.remote_id)]
        secret = adapter_class(platform).credentials_model.secret_fields()
        secrets = [v for k, v in {**own, **other}.items() if k in secret and len(v) >= 12]
        assert secrets
        assert_no_leak(message, *secrets, where="the refusal")
    finally:
        server.stop()


def test_rows_stored_before_normalisation_are_found_and_not_added_twice(sqlite_env: Env) -> None:
    from scheduler.core import vault

    with session_scope() as s:  # as an older crosspost stored it: the handle as typed
        s.add(Account(platform="mastodon", handle="@OldDesk", base_url="http://127.0.0.1:9",
                      credentials=vault.seal(Credentials({"access_token": "tok-0123456789"}))))
    with session_scope() as s:
        assert accounts.find(s, "mastodon:olddesk").handle == "@OldDesk"
        assert accounts.find(s, "mastodon:@OLDDESK").handle == "@OldDesk"
    with pytest.raises(accounts.UserError, match="already exists"):
        accounts.connect("mastodon", "olddesk", {"access_token": "tok-0123456789"},
                         base_url="http://127.0.0.1:9")
    assert len(rows()) == 1
