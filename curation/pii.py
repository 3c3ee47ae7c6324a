"""PII replacement: e-mail addresses, IP addresses, phone numbers and Chinese resident ID numbers.

What it is for: the `filter` stage (`curation.stages.run_filter`) passes every document through `scrub`
before writing it, and reports the counts per kind in its stats under `pii`. Matches are replaced by
placeholders (`PLACEHOLDERS`), so a model trained on the corpus learns the shape of the text, not the data.

Precision comes first: dates (2023-10-01, 2023年10月1日), versions (v1.2.3.4, 3.10.12), prices (¥1,299.00),
times (12:30:45) and long numbers that are not valid IDs must stay as they are.

* email: local@domain.tld (tld of 2+ letters).
* cn_id: 18-character mainland China resident ID: region (first digit 1-8), a valid birth date
  (1900-2099), sequence, and the ISO 7064 MOD 11-2 check character (GB 11643-1999); a wrong checksum is
  left alone.
* ipv4: dotted quad of octets 0-255 without leading zeros, not part of a longer dotted number and not
  after "v"/"version"; only globally routable addresses (private, loopback and documentation ranges are
  not personal data).
* ipv6: candidates validated by `ipaddress`; only globally routable addresses (2001:db8::/32 documentation,
  loopback, link-local and private ones are kept).
* phone: mainland China mobile numbers (1[3-9]x, 11 digits, optionally +86 and separators 3-4-4), China
  landlines with an area code (0xx-xxxxxxxx), and international/North-American numbers written with
  separators (+1 415 555 0100, (415) 555-0100, +44 20 7946 0958).

    .venv/bin/python -c "from curation.pii import scrub; print(scrub('mail me: a.b@example.com'))"
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

PLACEHOLDERS = {
    "email": "<EMAIL>",
    "cn_id": "<ID_NUMBER>",
    "ipv4": "<IP_ADDRESS>",
    "ipv6": "<IP_ADDRESS>",
    "phone": "<PHONE>",
}
KINDS = tuple(PLACEHOLDERS)

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9_.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_CN_ID = re.compile(r"(?<![0-9A-Za-z])([1-8]\d{5})((?:19|20)\d{2})(\d{2})(\d{2})(\d{3})([0-9Xx])(?![0-9A-Za-z])")
_IPV4 = re.compile(
    r"(?<![A-Za-z0-9_.])(?<!version )"
    r"((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})"
    r"(?!\.?\d)(?![A-Za-z0-9_-])"
)
# validated by ipaddress
_IPV6 = re.compile(r"(?<![A-Za-z0-9_:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![A-Za-z0-9_:]|\.\w)")
_PHONE = re.compile(
    r"(?<![A-Za-z0-9_+.-])(?:"
    # mainland China mobile: 13812345678, 138-1234-5678, 138 1234 5678, +86 138 1234 5678, (+86)13812345678
    r"(?:(?:\+|00)?86[- ]?|\(\+?86\)\s?)?1[3-9]\d(?:[- ]?\d{4}){2}"
    # China landline with area code: 010-12345678, 0755-1234567, (021) 1234 5678
    r"|(?:\(0\d{2,3}\)\s?|0\d{2,3}-)\d{3,4}[- ]?\d{4}"
    # international / NANP with separators: +1 415 555 0100, (415) 555-0100, 415-555-0100, +44 20 7946 0958
    r"|\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]\d{2,4}){2,3}"
    r"|\(\d{3}\)\s?\d{3}[ .-]\d{4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4}"
    r")(?![A-Za-z0-9_-])(?!\.\d)"
)
# Cheap necessary conditions, searched before the full patterns: each full pattern starts with a look-behind
# and the engine tries it at every position of the text (phone numbers were 55 of the 93 ms of `scrub` on the
# 136 pages of the bench's WARCs plus the Heritrix one; the gate takes 2 ms and lets 52 pages through).
# * phone: every alternative holds >= 6 digits (+1 2 34 56 is the shortest) with only whitespace and
#   + ( ) . - between them, so a match contains a digit followed by five more with only those in between;
# * cn_id: 17 digits in a row starting with 1-8 (the region code's first digit); such a run also passes the
#   phone gate, which is searched first (cheaper);
# * IPv4: ".d.d.d", its last three octets with the dot in front (a literal first character lets the engine
#   skip from '.' to '.');
# * IPv6: two colons with at most four hex digits between them ("::" or ":db8:").
# A replacement placeholder holds no digit, colon or dot, so a gate that fails before the substitutions
# would fail after them too; each gate is searched on the text as it stands before its own substitution.
_PHONE_GATE = re.compile(r"\d(?:[\s+().-]*\d){5}")
_CN_ID_GATE = re.compile(r"[1-8]\d{16}")
_IPV4_GATE = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")
_IPV6_GATE = re.compile(r":[0-9A-Fa-f]{0,4}:")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def cn_id_valid(number: str) -> bool:
    """True for an 18-character resident ID number with a valid birth date and check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    month, day = int(number[10:12]), int(number[12:14])
    if not (1 <= month <= 12 and 1 <= day <= _DAYS[month - 1]):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17].upper()


def _ipv4_personal(text: str) -> bool:
    return ipaddress.IPv4Address(text).is_global


def _ipv6_personal(text: str) -> bool:
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return addr.is_global


def scrub(text: str, kinds: tuple[str, ...] | list[str] = KINDS) -> tuple[str, Counter[str]]:
    """Replace the PII of `kinds` in `text`; return (new text, count per kind)."""
    counts: Counter[str] = Counter()

    def sub(kind: str, pattern: re.Pattern[str], keep_if=None) -> None:  # type: ignore[no-untyped-def]
        nonlocal text

        def replace(match: re.Match[str]) -> str:
            if keep_if is not None and keep_if(match.group(0)):
                return match.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        text = pattern.sub(replace, text)

    # Order matters: e-mails first (their domains hold digits and dots), IDs before phones (an 18-digit ID
    # contains 11-digit runs), IPv4 before phones (a dotted quad is not a phone).
    if "email" in kinds and "@" in text:
        sub("email", _EMAIL)
    if "cn_id" in kinds and _PHONE_GATE.search(text) and _CN_ID_GATE.search(text):
        sub("cn_id", _CN_ID, lambda m: not cn_id_valid(m))
    if "ipv4" in kinds and _IPV4_GATE.search(text):
        sub("ipv4", _IPV4, lambda m: not _ipv4_personal(m))
    if "ipv6" in kinds and ("::" in text or text.count(":") >= 7) and _IPV6_GATE.search(text):
        sub("ipv6", _IPV6, lambda m: not _ipv6_personal(m))
    if "phone" in kinds and _PHONE_GATE.search(text):
        sub("phone", _PHONE)
    return text, counts
