"""Pure rules of feed ingest: canonical links, UTM, plain text, hashtags, shortening, templates fitted
to a platform's limit, the rhythm of polling, and documents of every format parsed to entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from adapters import adapter_class
from scheduler.core.errors import UserError
from scheduler.feeds import health, links, pages, templates
from scheduler.feeds.parsing import parse
from scheduler.feeds.text import ELLIPSIS, hashtags, plain, shorten

# -- links ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [
    ("http://Example.COM/news/1/", "https://example.com/news/1"),
    ("https://example.com/news/1?utm_source=x&utm_medium=social", "https://example.com/news/1"),
    ("https://example.com:443/a?b=2&a=1#top", "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?fbclid=zz&id=7", "https://example.com/a?id=7"),
    ("https://EXAMPLE.com", "https://example.com/"),
])
def test_the_same_article_has_one_canonical_link(a: str, b: str) -> None:
    assert links.canonical(a) == links.canonical(b)
    assert links.link_key(a) == links.link_key(b)


@pytest.mark.parametrize("a, b", [
    ("https://example.com/news/1", "https://example.com/news/2"),
    ("https://example.com/a?id=1", "https://example.com/a?id=2"),
    ("https://example.com/a", "https://example.org/a"),
])
def test_different_articles_keep_different_keys(a: str, b: str) -> None:
    assert links.link_key(a) != links.link_key(b)


_URLS = st.builds(
    lambda scheme, host, path, q: f"{scheme}://{host}/{path}" + (f"?{q}" if q else ""),
    st.sampled_from(["http", "https", "HTTP"]), st.from_regex(r"[a-zA-Z]{1,8}\.(com|cn|org)", fullmatch=True),
    st.from_regex(r"[a-z0-9/]{0,12}", fullmatch=True),
    st.from_regex(r"(utm_source=a&)?(id=[0-9]{1,3})?(&utm_campaign=b)?", fullmatch=True))


@given(_URLS)
def test_canonical_is_idempotent(url: str) -> None:
    once = links.canonical(url)
    assert links.canonical(once) == once
    assert "utm_" not in once


def test_utm_is_added_per_platform_and_replaces_old_utm() -> None:
    values = links.utm_values({"utm_campaign": "cn-site"}, platform="mastodon", feed="3")
    assert values == {"utm_source": "mastodon", "utm_medium": "social", "utm_campaign": "cn-site"}
    tagged = links.with_utm("https://ex.com/a?id=1&utm_source=rss#p", values)
    assert tagged == "https://ex.com/a?id=1&utm_source=mastodon&utm_medium=social&utm_campaign=cn-site#p"
    assert links.utm_values({"utm_medium": ""}, platform="x", feed="1") == {
        "utm_source": "x", "utm_campaign": "feed-1"}


# -- text -----------------------------------------------------------------------------------------
def test_plain_drops_tags_and_decodes_entities() -> None:
    html = "Tom &amp; <b>Jerry</b>&nbsp;&#8212; <script>x()</script>live<br>now"
    assert plain(html) == "Tom & Jerry — live now"


def test_hashtags_from_categories() -> None:
    assert hashtags(["World News", "科技", "world-news", "!!"]) == "#WorldNews #科技"


_PIECES = st.sampled_from([*"ab cd.,\n", "é", "e\u0301", "👍🏽", "中", "文"])


@given(st.lists(_PIECES, max_size=60).map("".join),
       st.integers(min_value=1, max_value=60))
def test_shorten_fits_and_is_a_prefix(text: str, limit: int) -> None:
    out = shorten(text, limit)
    assert len(out) <= limit or out == ELLIPSIS
    if out != text:
        assert out.endswith(ELLIPSIS)
        assert text.startswith(out[:-1].rstrip())
        # never inside a grapheme cluster
        head = out[:-1].rstrip()
        assert regex.findall(r"\X", text)[:len(regex.findall(r"\X", head))] == regex.findall(r"\X", head)


def test_shorten_cuts_latin_at_a_word_and_cjk_at_a_grapheme() -> None:
    assert shorten("Breaking news from the capital", 20) == "Breaking news from…"
    assert shorten("今天天气很好我们去公园散步吧", 8) == "今天天气很好我…"


@given(st.integers(min_value=1, max_value=90))
def test_shorten_never_cuts_inside_a_link(limit: int) -> None:
    link = "https://example.com/news/2026/11/30/a-long-article-name?id=42"
    text = f"Read this first part {link} and then the end of it"
    out = shorten(text, limit)
    assert link in out or "https://" not in out


# -- templates -----------------------------------------------------------------------------------
FIELDS = templates.Fields(
    title="The council approved the new harbour bridge after a long debate on costs",
    summary="The vote was 31 to 12. Construction starts in spring and takes three years to finish.",
    link="https://news.example/harbour-bridge?utm_source=x", categories=["City", "Transport"],
    hashtags="#City #Transport")
SOURCE = "{{ title }}\n\n{{ summary }}\n\n{{ link }} {{ hashtags }}"


@given(st.integers(min_value=60, max_value=400))
def test_fit_keeps_the_link_whole_and_stays_within_the_limit(limit: int) -> None:
    out = templates.fit(SOURCE, FIELDS, limit)
    assert len(out) <= limit
    assert FIELDS.link in out  # the summary and the title give way first


@given(st.lists(_PIECES, max_size=120).map("".join), st.lists(_PIECES, max_size=300).map("".join),
       st.integers(min_value=40, max_value=300))
def test_fit_holds_for_any_title_and_summary(title: str, summary: str, limit: int) -> None:
    fields = templates.Fields(title=title, summary=summary, link="https://news.example.com/a?id=1")
    out = templates.fit(SOURCE, fields, limit)
    assert len(out) <= limit
    assert fields.link in out  # 30 characters: room is always left for it once the fields give way


def test_fit_shortens_the_summary_before_the_title() -> None:
    full = templates.render(SOURCE, FIELDS)
    out = templates.fit(SOURCE, FIELDS, len(full) - 20)
    assert FIELDS.title in out and ELLIPSIS in out and FIELDS.summary not in out


def test_fit_counts_as_the_platform_counts() -> None:
    caps = adapter_class("x").caps
    long = templates.Fields(title="word " * 80, summary="", link="https://news.example.com/" + "a" * 200)
    out = templates.fit(templates.DEFAULT, long, caps.text_limit, caps.count)
    assert caps.count(out) <= caps.text_limit
    assert long.link in out  # X counts a link as 23, so the 200-character link fits whole
    assert len(out) > caps.text_limit  # ...which plain len() would not have allowed


def test_cjk_title_is_cut_between_graphemes() -> None:
    cjk = templates.Fields(title="国务院常务会议研究部署进一步优化营商环境的政策措施" * 3, summary="",
                           link="https://news.example/zh/1")
    out = templates.fit("{{ title }} {{ link }}", cjk, 60)
    assert out.endswith(" https://news.example/zh/1") and ELLIPSIS in out and len(out) <= 60


@pytest.mark.parametrize("source, problem", [
    ("{{ titel }}", "unknown field 'titel'"),
    ("{% if title %}", "template: default:"),
    ("x" * 10_001, "the limit is 10000"),
])
def test_bad_templates_are_refused_with_the_reason(source: str, problem: str) -> None:
    with pytest.raises(UserError, match=regex.escape(problem)):
        templates.check(source)


def test_the_sandbox_refuses_unsafe_and_huge_templates() -> None:
    with pytest.raises(UserError):
        templates.render("{{ title.__class__.__mro__ }}", FIELDS)
    with pytest.raises(UserError, match="too large"):
        templates.render("{{ title * 10000000 }}", FIELDS)
    endless = "{% for i in range(99999) %}{% for j in range(99999) %}0123456789{% endfor %}{% endfor %}"
    assert len(templates.render(endless, FIELDS)) == templates.OUTPUT_LIMIT


def test_a_template_asks_for_the_image_by_mentioning_it() -> None:
    assert templates.wants_image("{{ title }}{% if image %} ({{ image.alt }}){% endif %}")
    assert not templates.wants_image(templates.DEFAULT)


# -- health ---------------------------------------------------------------------------------------
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_backoff_doubles_after_each_error_up_to_the_cap() -> None:
    every = timedelta(minutes=5)
    delays = [health.next_poll(NOW, every, n) - NOW for n in range(0, 10)]
    assert delays[:4] == [every, every * 2, every * 4, every * 8]
    assert delays[-1] == health.BACKOFF_MAX
    assert delays == sorted(delays)


def test_silence_is_measured_against_the_usual_cadence() -> None:
    hourly = [NOW - timedelta(hours=h) for h in range(10, 0, -1)]
    last = hourly[-1]
    assert not health.silent(last + timedelta(hours=2), last, hourly)
    assert health.silent(last + timedelta(hours=4), last, hourly)
    assert not health.silent(NOW + timedelta(days=30), last, hourly[:2])  # too few to know a cadence


# -- parsing --------------------------------------------------------------------------------------
RSS20 = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Site</title><language>en</language>
<item><title>Tom &amp;amp; &lt;b&gt;Jerry&lt;/b&gt;</title><link>/news/1</link><guid>g-1</guid>
<category>World News</category>
<description>&lt;p&gt;Hello &lt;a href="/x"&gt;world&lt;/a&gt;&lt;/p&gt;</description>
<pubDate>Mon, 30 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>No date, no guid</title><link>https://site.example/news/2</link></item>
</channel></rss>"""
RSS091 = b"""<rss version="0.91"><channel><title>Old</title><link>http://o.example/</link>
<item><title>Old one</title><link>http://o.example/1</link></item></channel></rss>"""
RSS10 = b"""<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
xmlns="http://purl.org/rss/1.0/"><channel rdf:about="http://r.example/"><title>R</title></channel>
<item rdf:about="http://r.example/1"><title>RDF item</title><link>http://r.example/1</link></item></rdf:RDF>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" xml:lang="zh-CN">
<title>A</title><id>urn:a</id><updated>2026-11-30T08:00:00Z</updated>
<entry><title type="html">&lt;i&gt;Atom&lt;/i&gt; entry</title><id>urn:a:1</id><link href="entries/1"/>
<updated>2026-11-30T08:00:00Z</updated><category term="tech"/></entry></feed>"""
JSONFEED = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "J", "language": "en",
"items": [{"id": "j1", "url": "/j/1", "title": "JSON &amp; friends", "summary": "S", "tags": ["a"],
"date_published": "2026-11-30T08:00:00Z"}]}"""
SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>https://s.example/a</loc><news:news><news:publication><news:name>S</news:name>
<news:language>zh-cn</news:language></news:publication><news:publication_date>2026-11-30T08:00:00+08:00</news:publication_date>
<news:title>新闻标题</news:title><news:keywords>经济, 科技</news:keywords></news:news></url>
<url><loc>https://s.example/about</loc></url></urlset>""".encode()


def test_rss20_items_are_resolved_and_plain() -> None:
    parsed = parse(RSS20, "https://site.example/feed/rss.xml", "application/rss+xml")
    first, second = parsed.entries
    assert parsed.kind == "rss20" and parsed.language == "en"
    assert first.link == "https://site.example/news/1"
    assert first.title == "Tom & Jerry"
    assert first.summary == "Hello world"
    assert first.categories == ["World News"]
    assert first.published == datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert second.guid == "https://site.example/news/2" and second.published is None


@pytest.mark.parametrize("body, kind, title, link", [
    (RSS091, "rss091u", "Old one", "http://o.example/1"),
    (RSS10, "rss10", "RDF item", "http://r.example/1"),
    (ATOM, "atom10", "Atom entry", "https://a.example/feeds/entries/1"),
    (JSONFEED, "json", "JSON & friends", "https://a.example/j/1"),
    (SITEMAP, "sitemap-news", "新闻标题", "https://s.example/a"),
])
def test_every_format_gives_entries(body: bytes, kind: str, title: str, link: str) -> None:
    parsed = parse(body, "https://a.example/feeds/x", None)
    assert parsed.kind.startswith(kind[:5])
    assert parsed.entries[0].title == title
    assert parsed.entries[0].link == link
    assert len(parsed.entries) == 1  # the sitemap's page without <news:news> is not an item


def test_sitemap_keywords_and_language() -> None:
    entry = parse(SITEMAP, "https://s.example/sitemap.xml").entries[0]
    assert entry.categories == ["经济", "科技"] and entry.language == "zh-CN"
    assert entry.published == datetime(2026, 11, 30, 0, tzinfo=UTC)


ZH = "国务院常务会议：研究部署进一步优化营商环境"  # noqa: RUF001 - the CJK colon is the point
TW = "行政院會議通過：臺灣高鐵延伸計畫"  # noqa: RUF001


@pytest.mark.parametrize("body, content_type", [
    (f'<?xml version="1.0" encoding="gbk"?><rss version="2.0"><channel><title>新闻</title><item>'
     f'<title>{ZH}</title><link>/a</link></item></channel></rss>'.encode("gbk"), "text/xml"),
    (f'<?xml version="1.0" encoding="gb2312"?><rss version="2.0"><channel><title>新闻</title><item>'
     f'<title>{ZH}镕</title><link>/a</link></item></channel></rss>'.encode("gb18030"), None),
    (f'<rss version="2.0"><channel><title>新闻</title><item><title>{ZH}</title><link>/a</link>'
     f'<description>{ZH}，这是没有声明编码的摘要。</description></item></channel></rss>'.encode("gbk"), None),  # noqa: RUF001
    (f'<rss version="2.0"><channel><item><title>{TW}</title><link>/a</link></item></channel></rss>'
     .encode("big5"), "application/rss+xml; charset=big5"),
])
def test_chinese_encodings_declared_or_detected(body: bytes, content_type: str | None) -> None:
    title = parse(body, "https://zh.example/rss", content_type).entries[0].title
    assert title.startswith(ZH) or title == TW


def test_malformed_xml_is_recovered_where_possible_and_refused_otherwise() -> None:
    broken = b'<rss version="2.0"><channel><item><title>Fish & Chips</title><link>/f</link></item></channel>'
    assert parse(broken, "https://b.example/rss").entries[0].title == "Fish & Chips"
    with pytest.raises(UserError, match="is not an RSS, Atom, JSON Feed or news sitemap"):
        parse(b"<html><body>not a feed", "https://b.example/page")
    with pytest.raises(UserError, match="not a JSON Feed"):
        parse(b'{"hello": 1}', "https://b.example/j")


def test_page_image_from_open_graph_then_twitter_card() -> None:
    html = ('<html><head><meta property="og:image" content="/img/a.png">'
            '<meta property="og:image:alt" content="The bridge at dusk"></head><body>'
            '<meta property="og:image" content="/ignored.png"></body></html>')
    assert pages.image_of(html, "https://n.example/news/1") == pages.PageImage(
        "https://n.example/img/a.png", "The bridge at dusk")
    twitter = ('<meta name="twitter:image" content="https://c.example/t.jpg">'
               '<meta name="twitter:image:alt" content="T">')
    assert pages.image_of(twitter, "https://n.example/") == pages.PageImage("https://c.example/t.jpg", "T")
    assert pages.image_of("<p>nothing</p>", "https://n.example/") is None


def test_hostile_values_are_cleaned_before_they_reach_a_column() -> None:
    body = json.dumps({"version": "https://jsonfeed.org/version/1", "language": "x" * 100, "items": [
        {"id": "a\u0000b", "url": "/a", "title": "T\u0000i\u0007tle", "tags": "not a list",
         "language": "zh-cn"},
        {"id": "c", "url": "/c\u0000d", "title": "C", "tags": [1, {"x": 2}, "ok", " "]}]}).encode()
    parsed = parse(body, "https://j.example/f")
    first, second = parsed.entries
    assert parsed.language is None  # 100 x's are no language tag
    assert (first.guid, first.title, first.categories, first.language) == ("ab", "Title", [], "zh-CN")
    assert second.categories == ["ok"] and second.link is None
