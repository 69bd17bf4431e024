from __future__ import annotations

import os
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callback_api.filenames import content_disposition, extension, sanitize_filename

# Characters that make sanitising hard, mixed into generated names often enough to matter.
_TRICKY = (
    "/\\.\x00\t\n\r \x7f\x85\u00a0\u3000"  # separators, dots, controls, whitespace
    "\uff0f\u2215\u2044\u29f8\uff3c\ufe68\u2216\u29f5\u29f9"  # slash lookalikes
    "\uff0e\u2024\ufe52\u2025\u2026"  # dot lookalikes
    "\u200b\u200c\u200d\u200e\u200f\u061c\u202a\u202e\u2066\u2069\ufeff\u00ad\u2028"  # format
    "\u115f\u3164\u034f"  # invisible fillers
    "\u0301\u0327\u1100\u1161\u11a8e"  # combining marks, conjoining jamo
    "é日😀a.Zx%"
    "\ud800\udcff"  # lone surrogates
)
_NAMES = st.one_of(
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=400),
    st.text(alphabet=_TRICKY, max_size=400),
    st.lists(st.sampled_from(["..", ".", "/", "\\", "a", "é", " ", "\uff0e", "\u202e"])).map(
        "".join
    ),
)


def test_sanitize_keeps_an_ordinary_name() -> None:
    assert sanitize_filename("cat photo (1).jpg") == "cat photo (1).jpg"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../", "upload"),
        ("..\\", "upload"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("/etc/passwd", "passwd"),
        ("/var/tmp/", "upload"),
        ("C:\\Users\\ann\\cat.png", "cat.png"),
        ("\\\\server\\share\\cat.png", "cat.png"),
        ("a\uff0fb.png", "b.png"),
        ("a\u2215b.png", "b.png"),
        ("a\u2044b.png", "b.png"),
        ("a\u29f8b.png", "b.png"),
        ("a\uff3cb.png", "b.png"),
    ],
)
def test_sanitize_keeps_only_the_last_path_component(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_leaves_percent_escapes_as_literal_text() -> None:
    assert sanitize_filename("%2f") == "%2f"
    assert sanitize_filename("..%2f..%2fetc%2fpasswd") == "%2f..%2fetc%2fpasswd"


def test_sanitize_removes_nul_and_control_characters() -> None:
    assert sanitize_filename("cat\x00.php.jpg") == "cat.php.jpg"
    assert sanitize_filename("a\r\nb\x1b[31m\x7f\x85.txt") == "ab[31m.txt"


def test_sanitize_removes_the_right_to_left_override_that_disguises_an_extension() -> None:
    assert sanitize_filename("evil\u202egpj.exe") == "evilgpj.exe"
    assert extension(sanitize_filename("evil\u202egpj.exe")) == "exe"


def test_sanitize_removes_bidi_isolates_zero_width_and_invisible_characters() -> None:
    raw = "\u2066a\u2069\u200b\u200e\u200f\u061c\ufeff\u00adb\u3164\u115f\u034f.txt"
    assert sanitize_filename(raw) == "ab.txt"


def test_sanitize_keeps_the_joiners_that_scripts_and_emoji_need() -> None:
    assert sanitize_filename("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.txt") == (
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.txt"
    )
    assert sanitize_filename("\U0001f469\u200d\U0001f4bb.png") == "\U0001f469\u200d\U0001f4bb.png"


def test_sanitize_drops_lone_surrogates_that_utf8_cannot_encode() -> None:
    assert sanitize_filename("a\udcffb.txt") == "ab.txt"


def test_sanitize_composes_to_nfc() -> None:
    assert sanitize_filename("e\u0301.txt") == "\u00e9.txt"


def test_sanitize_composes_a_mark_that_a_removed_character_separated() -> None:
    assert sanitize_filename("e\u200b\u0301.txt") == "\u00e9.txt"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\uff0e\uff0e", "upload"),
        ("\uff0e", "upload"),
        ("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc\uff0fpasswd", "passwd"),
        ("\u2025", "upload"),
        ("\u2024\u2024", "upload"),
        ("\ufe52htaccess", "htaccess"),
        ("a\uff0etxt", "a.txt"),
    ],
)
def test_sanitize_turns_fullwidth_and_leader_dots_into_dots(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "upload"),
        ("   ", "upload"),
        ("\t\u3000\u00a0", "upload"),
        (".", "upload"),
        ("..", "upload"),
        ("....", "upload"),
        (". . .", "upload"),
        ("\x00", "upload"),
        ("\u202e", "upload"),
        (".htaccess", "htaccess"),
        ("  cat.jpg  ", "cat.jpg"),
        ("cat.jpg.", "cat.jpg"),
        ("cat.jpg . ", "cat.jpg"),
    ],
)
def test_sanitize_strips_dots_and_whitespace_at_the_edges(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_bounds_two_byte_characters_and_keeps_the_extension() -> None:
    out = sanitize_filename("\u00e9" * 2048 + ".png")
    assert out == "\u00e9" * 125 + ".png"
    assert len(out.encode("utf-8")) == 254


def test_sanitize_bounds_four_byte_characters_without_cutting_one_in_half() -> None:
    out = sanitize_filename("\U0001f600" * 1024 + ".jpg")
    assert out == "\U0001f600" * 62 + ".jpg"
    assert len(out.encode("utf-8")) == 252


def test_sanitize_bounds_three_byte_characters_in_a_name_without_extension() -> None:
    out = sanitize_filename("\u65e5" * 1400)
    assert out == "\u65e5" * 85
    assert len(out.encode("utf-8")) == 255


def test_sanitize_cuts_an_overlong_extension_with_the_rest_of_the_name() -> None:
    assert sanitize_filename("a." + "b" * 300) == "a." + "b" * 253


def test_sanitize_strips_whitespace_that_a_cut_leaves_at_the_end() -> None:
    out = sanitize_filename("x" * 250 + " " + "y" * 10 + ".png")
    assert out == "x" * 250 + ".png"
    assert sanitize_filename(out) == out


def test_sanitize_honours_a_smaller_max_bytes() -> None:
    assert sanitize_filename("abcdefghij.png", max_bytes=10) == "abcdef.png"
    assert sanitize_filename("abcdefghij", max_bytes=6) == "abcdef"


def test_sanitize_refuses_a_max_bytes_too_small_for_the_fallback_name() -> None:
    with pytest.raises(ValueError, match="max_bytes is 5; it must be at least 6"):
        sanitize_filename("cat.jpg", max_bytes=5)


@settings(max_examples=600, deadline=None)
@given(raw=_NAMES, max_bytes=st.integers(min_value=6, max_value=300))
def test_sanitize_output_is_always_one_safe_bounded_idempotent_component(
    raw: str, max_bytes: int
) -> None:
    out = sanitize_filename(raw, max_bytes)
    assert sanitize_filename(out, max_bytes) == out
    assert sanitize_filename(out) == out
    assert out and out not in (".", "..")
    assert not set(out) & set("/\\\x00\uff0f\u2215\u2044\u29f8\uff3c\uff0e")
    assert all(
        unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp")
        and (unicodedata.category(c) != "Cf" or c in "\u200c\u200d")
        for c in out
    )
    assert len(out.encode("utf-8")) <= max_bytes
    assert unicodedata.is_normalized("NFC", out)
    root = os.path.abspath("/srv/media")
    joined = os.path.normpath(os.path.join(root, out))
    assert os.path.commonpath([root, joined]) == root
    assert joined != root


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cat.JPG", "jpg"),
        ("archive.tar.gz", "gz"),
        ("README", ""),
        (".bashrc", ""),
        ("cat.", ""),
        ("..", ""),
        ("dir.d/file", ""),
        ("dir/file.Png", "png"),
    ],
)
def test_extension_is_the_lowercase_suffix_of_the_last_component(name: str, expected: str) -> None:
    assert extension(name) == expected


def test_content_disposition_of_an_ascii_name_has_only_the_plain_parameter() -> None:
    assert content_disposition("inline", "cat.jpg") == 'inline; filename="cat.jpg"'
    assert content_disposition("attachment", "a;b c.txt") == 'attachment; filename="a;b c.txt"'


def test_content_disposition_replaces_quotes_and_percent_in_the_fallback() -> None:
    assert content_disposition("attachment", 'say "hi" 100%.txt') == (
        "attachment; filename=\"say _hi_ 100_.txt\"; filename*=UTF-8''say%20%22hi%22%20100%25.txt"
    )


def test_content_disposition_never_lets_a_backslash_reach_the_header() -> None:
    assert content_disposition("attachment", 'a\\"b.txt') == (
        "attachment; filename=\"_b.txt\"; filename*=UTF-8''%22b.txt"
    )


def test_content_disposition_of_unicode_names_adds_a_utf8_filename_star() -> None:
    assert content_disposition("inline", "caf\u00e9.png") == (
        "inline; filename=\"cafe.png\"; filename*=UTF-8''caf%C3%A9.png"
    )
    assert content_disposition("attachment", "\u65e5\u672c\u8a9e.txt") == (
        "attachment; filename=\"___.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.txt"
    )


def test_content_disposition_sanitises_a_raw_name_first() -> None:
    assert content_disposition("attachment", "../a\r\nSet-Cookie: x=1") == (
        'attachment; filename="aSet-Cookie: x=1"'
    )


def test_content_disposition_refuses_an_unknown_disposition() -> None:
    with pytest.raises(ValueError, match="disposition is 'inline; x'"):
        content_disposition("inline; x", "cat.jpg")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(raw=_NAMES)
def test_content_disposition_is_always_printable_ascii(raw: str) -> None:
    value = content_disposition("attachment", raw)
    assert value.isascii()
    assert all(" " <= c <= "~" for c in value)
    fallback = value.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback and "\\" not in fallback
