"""curation.extract: main-text quality on real pages (floors below the measured scores, see bench/extract.py),
charset decoding (HTTP header, <meta>, detection; GBK/GB18030/Big5), and bad input that must give '' with a
reason (and a counted drop in the ingest stage), never an exception."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

import curation.extract as extract_module
from curation.config import IngestConfig
from curation.extract import MAX_HTML_CHARS, decode_html, extract, extract_document, extract_text
from curation.readers import read_records
from curation.stages import run_ingest

from shared_data import DATA, needs  # noqa: E402  (tests/ is on sys.path)

HTML = DATA / "html"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")  # words, or one CJK character: as bench/extract.py


def token_f1(predicted: str, expected: str) -> float:
    pred, gold = Counter(_TOKEN.findall(predicted.lower())), Counter(_TOKEN.findall(expected.lower()))
    overlap = sum((pred & gold).values())
    if not overlap:
        return 0.0
    p, r = overlap / sum(pred.values()), overlap / sum(gold.values())
    return 2 * p * r / (p + r)


def _gz(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def _visible_text(html: bytes) -> str:
    import lxml.html

    root = lxml.html.fromstring(decode_html(html))
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag in ("p", "div", "br", "li", "h1", "h2", "h3", "tr", "pre"):
            element.tail = "\n" + (element.tail or "")
    return root.text_content()


# ------------------------------------------------------------------------------------------ quality

# Measured token F1 (2026-11-23): nytimes-1 0.965, guardian-1 0.999, bbc-1 0.977, ars-1 0.989,
# lemonde-1 0.982, qq 0.961, gmw 0.994, pixnet (Traditional) 0.997. Floors leave ~0.05 of room.
@pytest.mark.parametrize(
    "case, floor",
    [("nytimes-1", 0.9), ("guardian-1", 0.93), ("bbc-1", 0.92), ("ars-1", 0.93), ("lemonde-1", 0.93),
     ("qq", 0.9), ("gmw", 0.93), ("pixnet", 0.93)],
)
def test_readability_pages_token_f1(case: str, floor: float) -> None:
    root = needs(HTML / "readability" / "test-pages" / case)
    expected = _visible_text(_gz(root / "expected.html.gz"))
    text = extract_text(_gz(root / "source.html.gz"))
    assert token_f1(text, expected) >= floor


def test_gne_chinese_news_char_f1() -> None:
    root = needs(HTML / "gne_zh_news")
    reference = json.loads((root / "gne_reference_output.json").read_text(encoding="utf-8"))
    scores = []
    for page, item in sorted(reference.items()):
        expected = json.JSONDecoder().raw_decode(item["raw"])[0]["content"]  # "raw": JSON + trailing text
        scores.append(token_f1(extract_text(_gz(root / page)), expected))
    # Measured 0.988 mean (6 of 7 pages >= 0.99); GNE's own output is the reference, not human gold.
    assert sum(scores) / len(scores) >= 0.95 and min(scores) >= 0.8, scores


def test_trafilatura_set_with_and_without_snippets() -> None:
    root = needs(HTML / "trafilatura")
    evaldata = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    langs = {row["url"]: row["lang_detected"] for row in map(json.loads, (root / "index.jsonl").open())}
    english = [(url, item) for url, item in evaldata.items() if langs.get(url) == "en"][:24]
    found = total_with = leaked = total_without = 0
    for url, item in english:
        text = extract_text(_gz(root / "pages" / item["file"]), url)
        found += sum(s in text for s in item["with"])
        leaked += sum(s in text for s in item["without"])
        total_with, total_without = total_with + len(item["with"]), total_without + len(item["without"])
    # Measured on these 24 pages: 0.915 of the main-text snippets found, 0.082 of boilerplate snippets leaked.
    assert found / total_with >= 0.87 and leaked / total_without <= 0.15


def test_mathml_formulas_are_kept() -> None:
    # MathJax 3 wraps each formula in <mjx-container class="CtxtMenu_Attached_0">, whose "Menu" looked like
    # navigation to the name rule: F1 0.528 before, 0.985 measured after.
    root = needs(HTML / "readability" / "test-pages" / "mathjax")
    expected = _visible_text(_gz(root / "expected.html.gz"))
    assert token_f1(extract_text(_gz(root / "source.html.gz")), expected) >= 0.93


def _trafilatura_page(name_start: str) -> tuple[str, dict]:
    root = needs(HTML / "trafilatura")
    evaldata = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    url, item = next((u, i) for u, i in evaldata.items() if i["file"].startswith(name_start))
    return url, {**item, "html": _gz(root / "pages" / item["file"])}


def test_a_negatively_named_wrapper_of_the_whole_post_is_kept() -> None:
    # blog.python.org: the post sits in `div.date-outer` ("date" is a byline word); our own scorer must
    # keep it, without the fallback engine (it found 0 chars before).
    url, item = _trafilatura_page("blog.python.org")
    page = extract_document(item["html"], url, fallback="none")
    assert page.engine == "lmpipe" and all(s in page.text for s in item["with"])


def test_a_page_inside_an_aspnet_form_is_read_by_the_first_pass() -> None:
    # football.ua wraps the whole page in <form id="aspnetForm">: a form holding an article's paragraphs
    # (FORM_ARTICLE_PARAGRAPHS, FORM_ARTICLE_CHARS) is kept, so no fallback is needed.
    url, item = _trafilatura_page("football.ua")
    page = extract_document(item["html"], url, fallback="none")
    assert page.engine == "lmpipe" and all(s in page.text for s in item["with"])
    assert not any(s in page.text for s in item["without"])


def test_readability_unlikely_blocks_are_dropped_but_not_a_page_wrapper() -> None:
    # bug-1255978: a 50-picture gallery (`ul.legends`, 16k chars) inside the article, which readability.js
    # drops as an unlikely candidate: F1 0.319 before, 0.994 measured after.
    root = needs(HTML / "readability" / "test-pages" / "bug-1255978")
    expected = _visible_text(_gz(root / "expected.html.gz"))
    assert token_f1(extract_text(_gz(root / "source.html.gz")), expected) >= 0.93
    # uusisuomi.fi: the whole article sits in `div.skyscraper-height-div` (11 of the page's 11 paragraphs):
    # an unlikely name on a wrapper of most of the page is kept.
    url, item = _trafilatura_page("uusisuomi.fi")
    assert all(s in extract_text(item["html"], url) for s in item["with"])


def test_an_article_cut_into_sections_is_taken_whole() -> None:
    # mozilla-2: `main` holds two <section>s of feature descriptions; sections now vote like paragraphs
    # (as in readability.js), so `main` wins over the first section alone: F1 0.597 before, 1.000 measured.
    root = needs(HTML / "readability" / "test-pages" / "mozilla-2")
    expected = _visible_text(_gz(root / "expected.html.gz"))
    text = extract_text(_gz(root / "source.html.gz"))
    assert "Network Monitor" in text and "Important: Sync your new profile" in text
    assert token_f1(text, expected) >= 0.95


def test_a_name_ending_in_tag_is_not_a_tag_box() -> None:
    # 163.com names its related-story box `div.special_tag`; "tags"/"tag" as words stay negative.
    root = needs(HTML / "gne_zh_news" / "pages" / "163")
    text = extract_text(_gz(root / "5.html.gz"))
    assert "延伸" in text and "电信技术部门监测到其操作频繁" in text
    tag_box = "<div class='tag'>Topics: Politics, Economy and Finance, World News</div>"  # no links: the name
    body = "".join(f"<p>Paragraph {i} of the story, with a few words, commas, and a full stop at its end.</p>"
                   for i in range(6))
    html = f"<html><body><div class='article'>{body}{tag_box}</div></body></html>"
    out = extract_document(html, fallback="none").text
    assert "Paragraph 5 of the story" in out and "Economy and Finance" not in out


def test_a_related_story_headline_is_kept_with_its_teaser_but_not_an_off_site_promotion() -> None:
    # 163.com's "延伸 · 推荐": a paragraph that is one link (the related story's headline) and its teaser;
    # GNE's reference and readability keep both (GNE 163/5 0.926 -> 0.937, measured).
    text = extract_text(_gz(needs(HTML / "gne_zh_news" / "pages" / "163" / "5.html.gz")))
    assert "女警一天打100电话被停机" in text and "电信技术部门监测到其操作频繁" in text
    # portalspozywczy.pl: the same shape, but the link goes to another site (a property-listing ad), a
    # boilerplate snippet of the trafilatura set.
    url, item = _trafilatura_page("Eurocash")
    text = extract_text(item["html"], url)
    assert all(s in text for s in item["with"]) and not any(s in text for s in item["without"])


def _warc_page(warc: str, url: str) -> tuple[bytes | str, str | None]:
    path = needs(DATA / "warc" / warc)
    record = next(r for r in read_records(path) if r["url"] == url and r["kind"] == "html")
    return record["content"], record["charset"]


def test_a_landing_page_of_headline_sentences_is_read_by_our_scorer() -> None:
    # commoncrawl.org's home page: no paragraph at all, its text is two <h1> and four <h2> statements among
    # link cards. Headings then vote as paragraphs; before, it went to trafilatura (22 ms), which returned the
    # same sentences (412 chars; ours 414, token F1 1.00 against trafilatura's text).
    html, charset = _warc_page("dolma-sample-0001.warc.gz", "https://commoncrawl.org/")
    page = extract_document(html, "https://commoncrawl.org/", charset, fallback="none")
    assert page.engine == "lmpipe"
    assert "open repository of web crawl data" in page.text and "3–5 billion new pages" in page.text
    assert "DeepSeekMath" not in page.text  # the featured-paper link cards stay out
    reference, _ = extract_module._trafilatura(decode_html(html, charset), "https://commoncrawl.org/")
    assert token_f1(page.text, reference) >= 0.95


def test_no_fallback_on_pages_with_little_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Chinese link listing from the CC WARC (1.3k chars of text in all, our scorer finds no article):
    # trafilatura returned its listing lines, which never reached the mix; it is no longer called there.
    calls: list[str | None] = []
    real = extract_module._trafilatura

    def counting(html: str, url: str | None) -> tuple[str, str]:
        calls.append(url)
        return real(html, url)

    monkeypatch.setattr(extract_module, "_trafilatura", counting)
    url = "http://0755krk.com/76104/list_4_1.html"
    html, charset = _warc_page("cc-main-2020-34-sample.warc.gz", url)
    assert extract_document(html, url, charset).text == "" and calls == []
    # The count includes text an extractor may return although a browser shows it in a form field:
    # archive.org's sign-up page holds its 15k-char terms of use in a <textarea> (trafilatura returns them).
    url = "http://www.archive.org/account/login.createaccount.php"
    html, charset = _warc_page("aut-archiveit-227-example.warc.gz", url)
    page = extract_document(html, url, charset)
    assert calls == [url] and page.engine == "trafilatura" and "terms of use agreement" in page.text
    # A page with enough text still gets the fallback (security.googleblog.com: our scorer finds < 250 chars).
    url, item = _trafilatura_page("security.googleblog.com")
    page = extract_document(item["html"], url)
    assert calls[-1] == url and page.engine == "trafilatura" and all(s in page.text for s in item["with"])


def test_unknown_fallback_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="fallback"):
        extract_document("<html><body><p>text</p></body></html>", fallback="readability")


def test_title_is_returned_with_the_text() -> None:
    raw = _gz(needs(HTML / "gne_zh_news" / "pages" / "163" / "1.html.gz"))
    text, title = extract(raw)
    assert "龙湖集团" in title and "龙湖集团" in text


# ------------------------------------------------------------------------------------------ charsets


def test_utf8_page_with_lying_gb2312_meta_is_decoded_as_utf8() -> None:
    raw = _gz(needs(HTML / "gne_zh_news" / "pages" / "qq" / "2.html.gz"))
    assert b'charset="gb2312"' in raw
    text, title = extract(raw)
    assert title.startswith("棱镜|数据业大整顿") and "\ufffd" not in text


def test_gbk_page_from_common_crawl_uses_the_meta_charset() -> None:
    warc = needs(DATA / "warc" / "cc-main-2020-34-sample.warc.gz")
    (record,) = [r for r in read_records(warc) if r["url"] == "http://041696.com/15477/list_6_4.html"]
    assert record["charset"] is None and b"charset=gbk" in record["content"][:3000].lower()  # only <meta> says so
    text = extract_text(record["content"], record["url"])
    # (A link listing with 1.4k chars of text: since the fallback pre-check, our scorer's short text, not
    # trafilatura's listing lines, is the answer; both decode the same GBK bytes.)
    assert "上海特舟实业有限公司" in text and "\ufffd" not in text


ZH_PARAGRAPH = "朱镕基在北京出席会议并发表讲话，强调要继续深化改革，扩大对外开放，促进经济社会全面发展。" * 4


def _page(charset_meta: str | None, body: str) -> str:
    meta = f'<meta http-equiv="Content-Type" content="text/html; charset={charset_meta}">' if charset_meta else ""
    return f"<html><head>{meta}<title>新聞</title></head><body><div><p>{body}</p></div></body></html>"


def test_gb2312_label_decodes_gbk_only_characters() -> None:
    # 镕 is in GBK but not GB2312: real "gb2312" pages are GBK, so the label is read as gb18030.
    html = _page("gb2312", ZH_PARAGRAPH).encode("gbk")
    assert ZH_PARAGRAPH in extract_text(html)
    assert ZH_PARAGRAPH in decode_html(_page(None, ZH_PARAGRAPH).encode("gbk"), charset="gbk")


def test_gb18030_four_byte_characters() -> None:
    text = ZH_PARAGRAPH + "𠀀𡃁"  # CJK Extension B: only GB18030's 4-byte sequences hold these
    html = _page("gb18030", text).encode("gb18030")
    assert text in extract_text(html)


def test_big5_page_by_meta_and_by_http_header() -> None:
    traditional = "臺灣的學者在研討會上發表論文，討論經濟發展與環境保護之間的關係，並提出具體建議。" * 4
    html = _page("big5", traditional).encode("big5")
    assert traditional in extract_text(html)
    no_meta = _page(None, traditional).encode("big5")
    assert traditional in extract_text(no_meta, charset="big5")  # the HTTP Content-Type charset


def test_http_header_charset_beats_a_wrong_meta() -> None:
    html = _page("iso-8859-1", ZH_PARAGRAPH).encode("gbk")
    assert ZH_PARAGRAPH in extract_text(html, charset="GBK")


def test_detection_fallback_without_any_label() -> None:
    html = _page(None, ZH_PARAGRAPH * 3).encode("gb18030")
    assert ZH_PARAGRAPH in extract_text(html)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "empty"),
        (b"   \n\t  ", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "binary"),
        (gzip.compress(b"<html><body><p>compressed twice</p></body></html>" * 50), "binary"),
        ("<html><body><script>var x = 1;</script><img src='a.png'></body></html>", "no_main_text"),
        ("<!-- only a comment -->", "unparsable"),
    ],
)
def test_bad_input_gives_empty_text_and_a_reason(payload: bytes | str, reason: str) -> None:
    result = extract_document(payload)
    assert result.text == "" and result.reason == reason
    assert extract_text(payload) == "" and extract(payload) == ("", "")


def test_invalid_utf8_is_decoded_with_replacement_not_an_error() -> None:
    body = "<p>" + "Valid English sentence about the weather, with commas, and more words. " * 5 + "</p>"
    html = f"<html><body><article>{body}</article></body></html>".encode() + b"\xff\xfe\xc3\x28 trailing"
    text = extract_text(html)
    assert "Valid English sentence" in text


def test_tens_of_megabytes_are_refused_quickly() -> None:
    huge = b"<html><body>" + (b"<div><p>filler text, " + b"x" * 1000 + b"</p></div>") * 20_000 + b"</body></html>"
    assert len(huge) > MAX_HTML_CHARS  # ~20 MB
    start = time.process_time()
    result = extract_document(huge)
    assert result.text == "" and result.reason == "too_large"
    assert time.process_time() - start < 5  # a guard against parsing it, not a benchmark


def test_deeply_nested_markup_does_not_raise() -> None:
    html = "<html><body>" + "<div>" * 5000 + "<p>" + "deep text, " * 50 + "</p>" + "</div>" * 5000 + "</body></html>"
    assert isinstance(extract_text(html), str)


def test_ingest_counts_bad_html_payloads_as_drops(tmp_path: Path) -> None:
    def response(uri: str, body: bytes) -> bytes:
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
                f"WARC-Record-ID: <urn:uuid:{abs(hash(uri))}>\r\nContent-Type: application/http; msgtype=response\r\n"
                f"Content-Length: {len(http)}\r\n\r\n").encode()
        return gzip.compress(head + http + b"\r\n\r\n")

    paragraph = b"<p>A real paragraph of text, with commas, and enough words to count.</p>"
    article = b"<html><body><article>" + paragraph * 10
    warc = tmp_path / "bad.warc.gz"
    warc.write_bytes(
        response("http://a.example/ok", article + b"</article></body></html>")
        + response("http://a.example/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
        + response("http://a.example/empty-page", b"<html><body><script>x()</script></body></html>")
    )
    stats = run_ingest([str(warc)], tmp_path / "out", IngestConfig())
    assert stats["docs_out"] == 1
    assert stats["dropped"] == {"binary": 1, "empty_text": 1}


_PARAGRAPH = ("The council approved the new budget on Tuesday after a long debate about schools, roads and the "
              "city's ageing water pipes, which engineers say need urgent repair before next winter. ")


def _story(after: str) -> str:
    body = "".join(f"<p>{_PARAGRAPH} Part {i}.</p>" for i in range(4))
    return f"<div class='story'>{body}{after}</div>"


def _article_page(after: str) -> str:
    return f"<html><head><title>Budget</title></head><body>{_story(after)}</body></html>"


def test_a_reader_comment_thread_after_the_article_is_cut() -> None:
    # 2007-08 news templates put comments in the article's own container, with no "comment" class to see.
    comments = "<h3>Reader Comments (2)</h3>" + "".join(
        f"<p>I disagree with the council, the roads matter far more than anything else here. {i}</p>"
        f"<p>Posted by: reader{i} | January 14, 2008 06:24 PM</p>" for i in range(2))
    text = extract_text(_article_page(comments))
    assert "Part 3." in text and "Posted by" not in text and "Reader Comments" not in text


def test_a_comment_named_block_is_dropped_even_with_a_positive_word() -> None:
    comments = "".join(f"<div class='commentText'><p>What a waste of money, again and again. {i}</p></div>"
                       for i in range(3))
    text = extract_text(_article_page(comments))
    assert "Part 3." in text and "waste of money" not in text


def test_a_singular_comment_column_heading_does_not_cut_the_text() -> None:
    table = "<table><tr><th>State</th><th>Comment</th></tr><tr><td>new</td><td>Pick up new tasks.</td></tr></table>"
    after = f"<p>Comment</p>{table}<p>{_PARAGRAPH} The end.</p>"
    assert "The end." in extract_text(_article_page(after))


def test_a_small_page_inside_a_form_is_read_by_the_relaxed_pass() -> None:
    # Under FALLBACK_MIN_PAGE_TEXT trafilatura is not asked; the first pass drops the page-wide <form>.
    html = f"<html><body><form id='aspnetForm'>{_story('')}</form></body></html>"
    page = extract_document(html)
    assert page.engine == "relaxed" and "Part 3." in page.text
    assert extract_document(html, fallback="none").text == ""


def test_a_comment_thread_without_a_heading_is_cut_at_its_first_comment() -> None:
    comments = "".join(f"<p>As long as he does not take advice from his cousin, all will be fine {i}.</p>"
                       f"<p>Posted by: reader{i}, farnworth on 8:2{i}pm Tue 1 Jan 08</p>" for i in range(3))
    text = extract_text(_article_page(comments))
    assert "Part 3." in text and "cousin" not in text and "Posted by" not in text


def test_gallery_and_sharing_chrome_lines_are_dropped_but_not_prose() -> None:
    after = ("<p>View larger image</p><p>Print Email this Comment</p><p>Close</p>"
             "<p>Share this story with friends at work.</p>")
    text = extract_text(_article_page(after))
    lines = text.split("\n")
    assert "View larger image" not in lines and "Close" not in lines and "Print Email this Comment" not in lines
    assert "Share this story with friends at work." in lines


def test_a_form_wrapping_the_article_is_kept_but_a_sign_up_form_is_not() -> None:
    sidebar = "".join(f"<li><a href='/s{i}'>Another story headline number {i} from the archive</a></li>"
                      for i in range(12))
    story = "".join(f"<p>{_PARAGRAPH} Part {i}.</p>" for i in range(6))
    signup = ("<form class='signup'>" + "".join(f"<div>Get our newsletter every morning {i}</div>" for i in range(6))
              + "</form>")
    html = f"<html><body><ul>{sidebar}</ul><form id='aspnetForm'><div>{story}</div></form>{signup}</body></html>"
    page = extract_document(html, fallback="none")
    assert page.engine == "lmpipe" and "Part 5." in page.text and "newsletter" not in page.text


def test_a_long_comment_thread_does_not_outscore_the_short_post_it_follows() -> None:
    # A blog post of 4 paragraphs and a thread of 36 short comments in `div#comments` (a 2004 Chinese blog):
    # the thread holds more text and commas, so it won the vote until comment blocks went before scoring.
    post = "".join(f"<p>{ZH_PARAGRAPH} 第{i}段。</p>" for i in range(4))
    comment = "欢迎欢迎，热烈欢迎，拜读过你翻译的书，很不错，期待新作！"
    thread = "".join(f"<h4>re: 很高兴入住 2004-12-27 12:{i:02d}</h4><p>{comment}{i}</p>" for i in range(36))
    html = (f"<html><body><div id='main'><div class='post'><h2>很高兴入住博客堂</h2>{post}</div>"
            f"<div id='comments'><h3>评论</h3>{thread}</div></div></body></html>")
    text = extract_text(html)
    assert "第3段。" in text and "热烈欢迎" not in text


def test_a_forum_page_that_is_all_comments_keeps_them() -> None:
    thread = "".join(f"<p>As long as he does not take advice from his cousin, all will be fine here {i}.</p>"
                     for i in range(8))
    html = f"<html><body><div class='comments'>{thread}</div></body></html>"
    page = extract_document(html, fallback="none")
    assert page.engine == "lmpipe" and "all will be fine here 7." in page.text


def test_a_chinese_related_stories_list_after_the_article_is_cut() -> None:
    headline = "·夫妻勾结受贿近37万 原局长被判13年(图)"
    related = "<p>相关报道：</p>" + "".join(
        f"<p><a href='/n{i}.html'>{headline}</a>（2005-04-01 15:5{i}PM）</p>" for i in range(5))
    story = "".join(f"<p>{ZH_PARAGRAPH} 第{i}段。</p>" for i in range(4))
    html = f"<html><body><div>{story}{related}</div></body></html>"
    text = extract_text(html)
    assert "第3段。" in text and "相关报道" not in text and "受贿" not in text


def test_a_body_nested_in_an_unknown_head_tag_is_found() -> None:
    # sohu's 2003-05 templates open with a <script> before <html> and leave `<sohu_cms_include:aut_new_style>`
    # open in <head>; libxml2 then nests <body> inside it, where `root.find("body")` does not look.
    story = "".join(f"<p>{ZH_PARAGRAPH} 第{i}段。</p>" for i in range(4))
    html = (f"<script>var ad = 0;</script><html><head><title>对比试车</title>"
            "<sohu_cms_include:aut_new_style><link href=/a.css rel=stylesheet>"
            f"</head><body><table><tr><td class=cc>{story}</td></tr></table></body></html>")
    page = extract_document(html)
    assert page.engine == "lmpipe" and "第3段。" in page.text


def test_a_declared_charset_survives_a_stray_bad_byte() -> None:
    # One invalid byte in a gb2312 forum page sent it to charset detection, which read it as Cyrillic cp1251.
    html = _page(None, ZH_PARAGRAPH * 8).encode("gbk")
    damaged = html.replace("会议".encode("gbk"), b"\xc7\x20", 1)
    assert ZH_PARAGRAPH in extract_text(damaged, charset="gb2312")
    russian = ("Привет мир, это тестовая страница на русском языке. " * 50).encode("cp1251")
    assert "Привет мир" in decode_html(b"<html><body>" + russian + b"</body></html>", charset="gbk")



def test_advertisement_and_trackback_lines_are_dropped_but_not_prose() -> None:
    # Whole lines seen on many sites of the English dev parts; never the article's text.
    after = ("<p>Advertisement</p><p>Sponsored Links</p><p>Trackback</p><p>« Previous Post | Next Post »</p>"
             "<p>An advertisement ran in the paper.</p>")
    lines = extract_text(_article_page(after)).split("\n")
    assert lines[-1] == "An advertisement ran in the paper." and lines[-2].endswith("Part 3.")


def test_a_page_wide_form_stays_when_the_comment_thread_inside_it_goes() -> None:
    # ASP.NET blogs wrap the page in <form id="Form1">: with its comment thread the form holds an article's worth
    # of paragraphs and is kept; without the thread it is small, and measuring again must not drop it.
    post = "".join(f"<p>{ZH_PARAGRAPH} 第{i}段。</p>" for i in range(2))
    thread = "".join(f"<p>欢迎欢迎，热烈欢迎，拜读过你翻译的书，很不错，期待新作！{i}</p>" for i in range(36))
    html = (f"<html><body><form id='Form1'><div id='main'><div class='post'>{post}</div>"
            f"<div id='comments'>{thread}</div><p>发表于 2004年12月27日 12:40，阅读 3727，评论 63，欢迎转载。</p>"
            f"<p>本站文章版权归作者所有，转载请注明出处，谢谢合作。</p></div></form></body></html>")
    page = extract_document(html, fallback="none")
    assert page.engine == "lmpipe" and "第1段。" in page.text and "热烈欢迎" not in page.text
