"""Compose's per-platform preview over HTTP: the text each platform is sent (its variant, the link on its
own paragraph), a reply chain as numbered cards from the split publishing uses, what each platform links
highlighted, images with their alt text, the account's handle; escaped like every page."""

from __future__ import annotations

import re
from html import unescape

from adapters import adapter_class
from adapters.text import compose as body_of
from adapters.text import split_thread
from scheduler.web import preview
from tests.web.conftest import WebDesk, csrf_of


def _section(html: str, platform: str) -> str:
    found = re.search(rf'<section class="preview" data-preview="{platform}".*?</section>', html, re.S)
    assert found, f"no preview for {platform}"
    return found.group(0)


def _cards(section: str) -> list[str]:
    return [unescape(re.sub(r"<[^>]+>", "", text)) for text in
            re.findall(r'<p class="post-text">(.*?)</p>', section, re.S)]


def test_the_preview_splits_x_into_numbered_cards_and_keeps_telegram_one_post(web: WebDesk) -> None:
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/compose").text)
    text = " ".join(f"Sentence {n} of the #budget story, says @desk." for n in range(12))
    link = "https://example.org/budget"
    targets = [str(web.ids[p]) for p in ("x", "telegram", "bluesky")]
    answer = client.post("/ui/compose/check", data={
        "csrf": token, "text": text, "link": link, "thread": "on", "to": targets,
        "variant_bluesky": "Short for Bluesky #budget @desk.bsky.social example.org",
        "image_1_name": "harbour.jpg", "image_1_alt": "Cranes at dawn <over the harbour>"})
    assert answer.status_code == 200
    assert '<div id="previews" hx-swap-oob="true">' in answer.text  # swapped beside the counters
    x = _section(answer.text, "x")
    caps = adapter_class("x").caps
    expected = split_thread(body_of(text, link), caps.text_limit, caps.count)
    assert len(expected) > 1 and _cards(x) == expected
    assert re.findall(r'data-part="(\d+)"', x) == [str(n) for n in range(1, len(expected) + 1)]
    assert f">1/{len(expected)}</span>" in x
    assert '<span class="hl hashtag">#budget</span>' in x and '<span class="hl mention">@desk</span>' in x
    assert f'<span class="hl link">{link}</span>' in x
    assert x.count('class="post-image"') == 1  # on the first post of the chain
    assert "Cranes at dawn &lt;over the harbour&gt;" in x and "harbour.jpg" in x
    assert web.accounts["x"].split(":", 1)[1] in x and 'role="img" aria-label="avatar of' in x
    telegram = _section(answer.text, "telegram")
    assert _cards(telegram) == [body_of(text, link)] and "data-part" not in telegram
    bluesky = _section(answer.text, "bluesky")
    assert "its own variant" in bluesky
    assert _cards(bluesky) == [f"Short for Bluesky #budget @desk.bsky.social example.org\n\n{link}"]
    # Bluesky's facet rules: a bare domain with a known TLD is a link, a full handle a mention.
    assert '<span class="hl link">example.org</span>' in bluesky
    assert '<span class="hl mention">@desk.bsky.social</span>' in bluesky


def test_the_compose_page_shows_the_preview_and_escapes_the_text(web: WebDesk) -> None:
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/compose").text)
    answer = client.post("/ui/compose", data={"csrf": token, "text": "<script>alert(1)</script>", "to": "xx"})
    assert answer.status_code == 422  # refused (no such target): the form comes back with its preview area
    assert '<div id="previews">' in answer.text and "<script>alert" not in answer.text
    checked = client.post("/ui/compose/check", data={"csrf": token, "text": "<b>hi</b> #tag",
                                                     "to": str(web.ids["mastodon"])})
    mastodon = _section(checked.text, "mastodon")
    assert "&lt;b&gt;hi&lt;/b&gt;" in mastodon and "<b>" not in mastodon


def test_each_platform_highlights_what_its_apps_link() -> None:
    text = "See https://example.org/a, example.com #news @ann and @bob@social.example mail@x.org"

    def kinds(platform: str) -> list[tuple[str, str]]:
        return [(kind, text[a:b]) for a, b, kind in preview.spans(platform, text)]

    assert kinds("x") == [("link", "https://example.org/a"), ("link", "example.com"), ("hashtag", "#news"),
                          ("mention", "@ann"), ("mention", "@bob")]
    assert kinds("mastodon") == [("link", "https://example.org/a"), ("hashtag", "#news"), ("mention", "@ann"),
                                 ("mention", "@bob@social.example")]
    assert ("link", "https://example.org/a") not in kinds("instagram")  # captions do not link
    assert kinds("linkedin") == [("link", "https://example.org/a"), ("hashtag", "#news")]
    assert kinds("bluesky")[:2] == [("link", "https://example.org/a"), ("link", "example.com")]
