"""Pages from the Jinja2 templates (autoescaped), with what every page needs: the actor, the language
and zone, the CSRF token, and the menu of what this actor may use."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk.access import Actor
from scheduler.web import i18n, prefs, session

env = Environment(loader=PackageLoader("scheduler.web", "templates"), autoescape=select_autoescape(),
                  trim_blocks=True, lstrip_blocks=True)

# (path, message key, the role it needs, held everywhere?): a page a role cannot use is not offered.
MENU = [("/ui/stories", "stories", "viewer", False), ("/ui/inbox", "inbox", "viewer", False),
        ("/ui/compose", "compose", "editor", False), ("/ui/calendar", "calendar", "viewer", False),
        ("/ui/accounts", "accounts", "viewer", False),
        ("/ui/followers", "followers_report", "viewer", True), ("/ui/audit", "audit", "admin", True),
        ("/ui/webhooks", "webhooks", "admin", True),
        ("/ui/users", "users", "viewer", False), ("/ui/health", "health", "viewer", False),
        ("/ui/settings", "settings", "viewer", False)]


def may_see(actor: Actor, role: str, everywhere: bool) -> bool:
    return actor.everywhere(role) if everywhere else actor.at_least(role)


def page(request: Request, actor: Actor | None, template: str, status: int = 200,
         **context: Any) -> HTMLResponse:
    with session_scope() as s:
        chosen = prefs.read(s, actor)
    lang, tz, now = chosen.language, chosen.tz, utcnow()

    def t(key: str, **values: object) -> str:
        return i18n.translate(lang, key, **values)

    menu = [(path, t(key)) for path, key, role, everywhere in MENU
            if actor is not None and may_see(actor, role, everywhere)]
    html = env.get_template(template).render(
        request=request, actor=actor, lang=lang, tz=tz, t=t, menu=menu, path=request.url.path,
        when=lambda moment, date=True, clock=True: i18n.when(lang, moment, tz, date=date, clock=clock),
        short=lambda moment: i18n.short(lang, moment, tz, now),
        number=lambda value: i18n.number(lang, value), day=lambda iso: i18n.day(lang, iso),
        csrf=session.csrf_token(request) if actor is not None else session.login_csrf(request),
        **context)
    return HTMLResponse(html, status_code=status)
