"""E-mail over SMTP (``CROSSPOST_SMTP_URL``): the notifications a user chose, and their desk's daily
digest. One message per send; failures are typed, never carrying the server's login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from config.settings import get_settings
from scheduler.core.errors import UserError, shown

TIMEOUT = 20.0


class MailError(Exception):
    """The message did not go out; the text says why, without secrets."""


def check_address(address: str) -> str:
    address = address.strip()
    local, at, domain = address.rpartition("@")
    odd = any(c in address for c in " <>,\r\n")
    if not at or not local or "." not in domain or len(address) > 255 or odd:
        raise UserError(f"email: {shown(address)} is not an e-mail address")
    return address


def configured() -> bool:
    return bool(get_settings().smtp_url)


def compose(to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = get_settings().mail_from, to, subject
    message.set_content(text)
    return message


def send(to: str, subject: str, text: str) -> None:
    settings = get_settings()
    if not settings.smtp_url:
        raise MailError("no CROSSPOST_SMTP_URL: e-mail is not set up")
    url = urlsplit(settings.smtp_url)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise MailError("CROSSPOST_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
    port = url.port or (465 if url.scheme == "smtps" else 25)
    try:
        if url.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(url.hostname, port, timeout=TIMEOUT,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(url.hostname, port, timeout=TIMEOUT)
        with client:
            if url.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
            if url.username:
                client.login(unquote(url.username), unquote(url.password or ""))
            client.send_message(compose(to, subject, text))
    except (OSError, smtplib.SMTPException) as exc:
        # The class and the server's code only: its text may echo what we sent, the login among it.
        code = getattr(exc, "smtp_code", None)
        raise MailError(f"{type(exc).__name__}{f' {code}' if code else ''}") from None


def render(kind: str, payload: dict[str, Any]) -> tuple[str, str]:
    """Subject and text of a notification."""
    if kind == "digest":
        lines = [f"Your desk, the last 24 hours to {payload['at']}:", ""]
        lines += [f"  {state}: {n}" for state, n in sorted(payload.get("deliveries", {}).items())]
        lines += ["", f"Stories waiting for approval: {payload.get('awaiting_approval', 0)}"]
        return "crosspost: your daily digest", "\n".join(lines) + "\n"
    details = "\n".join(f"{k}: {v}" for k, v in sorted(payload.items()) if v is not None and k != "kind")
    return f"crosspost: {kind.replace('.', ' ')}", details + "\n"
