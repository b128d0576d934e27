"""Parsers: each supported format from files the tests make, and typed failures."""

from __future__ import annotations

import codecs
import io
import json
import zipfile

import docx
import pytest
from fpdf import FPDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threadline.retrieval.errors import InvalidFile, RetrievalError, UnsupportedFile
from threadline.retrieval.parsers import SUPPORTED_EXTENSIONS, ParsedText, parse


def make_pdf(*pages: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_plain_text_and_markdown_pass_through() -> None:
    assert parse(b"hello\r\nworld\r\n", "a.txt") == ParsedText("hello\nworld\n")
    md = b"# Title\n\nSome *emphasis* and `code`.\n"
    assert parse(md, "README.md").text == md.decode()


@pytest.mark.parametrize("ext", ["py", "js", "ts", "java", "go", "rs", "c", "cpp", "cs", "rb"])
def test_source_code_by_extension(ext: str) -> None:
    source = "def area(r):\n    return 3.14159 * r * r  # circle\n"
    assert parse(source.encode(), f"src/geometry.{ext}").text == source


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (codecs.BOM_UTF8 + "naïve café ☕".encode(), "utf-8 with BOM"),
        (codecs.BOM_UTF16_LE + "naïve café ☕".encode("utf-16-le"), "utf-16 LE"),
        (codecs.BOM_UTF16_BE + "naïve café ☕".encode("utf-16-be"), "utf-16 BE"),
        (codecs.BOM_UTF32_LE + "naïve café ☕".encode("utf-32-le"), "utf-32 LE"),
        ("naïve café ☕".encode(), "utf-8"),
    ],
)
def test_unicode_encodings_decode(encoded: bytes, encoding: str) -> None:
    assert parse(encoded, "notes.txt").text == "naïve café ☕", encoding


def test_legacy_encoding_is_detected() -> None:
    text = (
        "Съешь же ещё этих мягких французских булок, да выпей чаю. Широкая "
        "электрификация южных губерний даст мощный толчок подъёму сельского хозяйства."
    )
    assert parse(text.encode("cp1251"), "pangram.txt").text == text


def test_binary_named_txt_is_invalid() -> None:
    png_like = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    with pytest.raises(InvalidFile, match="binary"):
        parse(png_like, "photo.txt")


def test_control_characters_without_nul_are_invalid() -> None:
    with pytest.raises(InvalidFile):
        parse(bytes(range(1, 32)) * 50, "noise.md")


@pytest.mark.parametrize("name", ["empty.txt", "empty.pdf", "empty.docx", "empty.json"])
def test_empty_file_is_invalid(name: str) -> None:
    with pytest.raises(InvalidFile):
        parse(b"", name)


def test_whitespace_only_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="no text"):
        parse(b"  \n\t\n ", "blank.txt")


def test_unsupported_extension() -> None:
    with pytest.raises(UnsupportedFile, match="not a supported type"):
        parse(b"\x00\x01", "movie.mp4")
    with pytest.raises(UnsupportedFile):
        parse(b"hello", "no_extension")


def test_mime_type_is_the_fallback_for_unknown_extensions() -> None:
    assert parse(b"make all", "Makefile", "text/plain; charset=utf-8").text == "make all"
    assert parse(b'{"a": 1}', "payload", "application/json").text == '{"a": 1}'
    assert parse(b"x", "data.bin", "text/x-whatever").text == "x"
    with pytest.raises(UnsupportedFile):
        parse(b"x", "data.bin", "application/octet-stream")


def test_json_is_validated_and_kept() -> None:
    payload = json.dumps({"product": "Zephyr-9", "price": 12.5}, indent=2)
    assert parse(payload.encode(), "item.json").text == payload
    with pytest.raises(InvalidFile, match="not valid JSON"):
        parse(b'{"product": "Zephyr-9",', "broken.json")


def test_jsonl_checks_each_line() -> None:
    assert "b" in parse(b'{"a": 1}\n\n{"b": 2}\n', "rows.jsonl").text
    with pytest.raises(InvalidFile, match="line 2"):
        parse(b'{"a": 1}\nnot json\n', "rows.jsonl")


def test_csv_rows_carry_their_headers() -> None:
    data = b'sku,name,stock\nA-100,"Blue, large",12\nB-200,Red,0\n'
    assert parse(data, "stock.csv").text == (
        "sku: A-100; name: Blue, large; stock: 12\nsku: B-200; name: Red; stock: 0"
    )
    assert parse(b"a\tb\n1\t2\n", "t.tsv").text == "a: 1; b: 2"


def test_html_keeps_visible_text_only() -> None:
    page = b"""<!doctype html><html><head><title>Pump manual</title>
    <style>p { color: red }</style><script>var secret = "hidden";</script></head>
    <body><h1>Priming</h1><p>Open valve&nbsp;V2 &amp; wait.</p><ul><li>one</li><li>two</li></ul>
    <p>Broken <b>markup <i>still</p> works</body>"""
    text = parse(page, "manual.html").text
    assert text.startswith("Pump manual\n\nPriming")
    assert "Open valve V2 & wait." in text
    assert "one\n" in text
    assert "two" in text
    assert "Broken markup still" in text
    assert "works" in text
    assert "secret" not in text
    assert "color" not in text


def test_html_without_visible_text_is_invalid() -> None:
    with pytest.raises(InvalidFile):
        parse(b"<html><script>x()</script></html>", "empty.htm")


def test_pdf_text_layer_and_page_count() -> None:
    data = make_pdf("The turbine spins at 3600 rpm.", "Maintenance every 400 hours.")
    parsed = parse(data, "turbine.pdf")
    assert parsed.pages == 2
    assert "The turbine spins at 3600 rpm." in parsed.text
    assert "Maintenance every 400 hours." in parsed.text
    assert parsed.text.index("3600") < parsed.text.index("400 hours")


def test_pdf_without_text_layer_is_invalid() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 50, 50)  # drawing only, like a scan
    with pytest.raises(InvalidFile, match="no text layer"):
        parse(bytes(pdf.output()), "scan.pdf")


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 3],
        lambda data: b"%PDF-1.7\n" + bytes(range(256)) * 20,
        lambda data: b"not a pdf at all",
    ],
)
def test_corrupt_pdf_is_invalid(damage: object) -> None:
    assert callable(damage)
    with pytest.raises(InvalidFile, match="PDF"):
        parse(damage(make_pdf("Some text here.")), "broken.pdf")


def test_docx_paragraphs_and_tables() -> None:
    data = make_docx(
        ["Quarterly report", "Revenue grew 12% in Q3."],
        table=[["Region", "Sales"], ["North", "4.2M"]],
    )
    text = parse(data, "report.docx").text
    assert text.splitlines() == [
        "Quarterly report",
        "Revenue grew 12% in Q3.",
        "Region | Sales",
        "North | 4.2M",
    ]


def test_corrupt_docx_is_invalid() -> None:
    good = make_docx(["hello"])
    with pytest.raises(InvalidFile, match="docx"):
        parse(good[: len(good) // 2], "cut.docx")
    with pytest.raises(InvalidFile, match="docx"):
        parse(b"PK\x03\x04 not really a zip", "fake.docx")
    # A valid zip whose document part is not XML.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive, zipfile.ZipFile(io.BytesIO(good)) as source:
        for item in source.infolist():
            body = source.read(item)
            archive.writestr(
                item, b"<w:document><<<" if item.filename == "word/document.xml" else body
            )
    with pytest.raises(InvalidFile, match="docx"):
        parse(out.getvalue(), "mangled.docx")


def test_docx_without_text_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="no text"):
        parse(make_docx([]), "blank.docx")


def test_the_formats_the_issue_names_are_supported() -> None:
    for ext in ["txt", "md", "html", "json", "csv", "py", "js", "ts", "java", "go", "rs", "c",
                "cpp", "cs", "rb", "php", "sh", "pdf", "docx"]:  # fmt: skip
        assert ext in SUPPORTED_EXTENSIONS


def test_deeply_nested_json_is_invalid_not_a_crash() -> None:
    with pytest.raises(InvalidFile, match="too deeply"):
        parse(b"[" * 200_000 + b"]" * 200_000, "deep.json")
    with pytest.raises(InvalidFile, match="too deeply"):
        parse(b"[" * 200_000 + b"]" * 200_000, "deep.jsonl")


def test_oversized_csv_field_is_invalid() -> None:
    with pytest.raises(InvalidFile, match="CSV"):
        parse(b'a,b\n"' + b"x" * 200_000 + b'",1\n', "huge.csv")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.text(max_size=512).map(str.encode),
        st.binary(max_size=512).map(lambda tail: b"%PDF-1.4\n1 0 obj\n<<" + tail),
        st.binary(max_size=512).map(lambda tail: b"PK\x03\x04" + tail),
    ),
    ext=st.sampled_from(["txt", "md", "py", "json", "jsonl", "csv", "html", "pdf", "docx"]),
)
def test_any_bytes_give_text_or_a_typed_error(data: bytes, ext: str) -> None:
    try:
        parsed = parse(data, f"upload.{ext}")
    except RetrievalError:
        return
    assert parsed.text.strip()
