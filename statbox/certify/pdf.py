"""The PDF copy of a certificate, in any script: fpdf2 with Noto fonts from Debian, embedded.

Names and issuers come in Arabic, Chinese, Portuguese and every other script, so each line is
set in the Noto font of its script (Latin, Arabic, Simplified Chinese), with the others as
fallbacks for mixed lines, and shaped by HarfBuzz (fpdf2's text shaping through uharfbuzz):
Arabic letters join and run right to left. Fonts are subset and embedded, so the PDF reads the
same everywhere and its text extracts as the name itself (one known gap: poppler's pdftotext
gives the two letters of an Arabic lam-alef ligature in reverse order, as the glyph maps to
both; the page shows them right, and pypdf extracts them right). The fonts are found by path
(:data:`FONT_DIRS`; Debian's ``fonts-noto-core`` and ``fonts-noto-cjk``); a missing one is
an :class:`~statbox.errors.EnvironmentProblem` naming the package to install, never a
certificate with ``?`` for letters.

When the certificate has a ``verify_url``, a QR code of it (segno) is drawn into the page
beside the printed link, so a phone opens the hub's public verification page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import segno
from fontTools.ttLib import TTCollection
from fpdf import FPDF

from statbox.certify.certificates import certificate_words, check_lines
from statbox.errors import EnvironmentProblem

FONT_DIRS = (Path("/usr/share/fonts/truetype/noto"), Path("/usr/share/fonts/opentype/noto"))
"""Where Debian's Noto packages put their fonts; ``STATBOX_FONT_DIRS`` (colon-separated)
replaces them, for systems that keep fonts elsewhere."""


@dataclass(frozen=True)
class Face:
    family: str
    style: str  # "" regular, "B" bold
    file: str
    package: str
    collection_face: str | None = None
    """The face's full name inside a font collection (.ttc)."""


FACES = (
    Face("latin", "", "NotoSans-Regular.ttf", "fonts-noto-core"),
    Face("latin", "B", "NotoSans-Bold.ttf", "fonts-noto-core"),
    Face("arabic", "", "NotoSansArabic-Regular.ttf", "fonts-noto-core"),
    Face("arabic", "B", "NotoSansArabic-Bold.ttf", "fonts-noto-core"),
    Face("cjk", "", "NotoSansCJK-Regular.ttc", "fonts-noto-cjk", "Noto Sans CJK SC"),
    Face("cjk", "B", "NotoSansCJK-Bold.ttc", "fonts-noto-cjk", "Noto Sans CJK SC Bold"),
)


def font_dirs() -> list[Path]:
    value = os.environ.get("STATBOX_FONT_DIRS")
    return [Path(p) for p in value.split(":") if p] if value else list(FONT_DIRS)


def find_fonts() -> dict[Face, Path]:
    """Each face's file; EnvironmentProblem naming what is missing and how to install it."""
    found: dict[Face, Path] = {}
    missing: list[Face] = []
    for face in FACES:
        path = next((d / face.file for d in font_dirs() if (d / face.file).is_file()), None)
        if path is None:
            missing.append(face)
        else:
            found[face] = path
    if missing:
        packages = " ".join(sorted({face.package for face in missing}))
        raise EnvironmentProblem(
            f"certificates need the Noto fonts {', '.join(f.file for f in missing)} (looked in "
            f"{', '.join(map(str, font_dirs()))}): apt-get install {packages}"
        )
    return found


@cache
def _collection_index(path: Path, name: str) -> int:
    collection = TTCollection(str(path), lazy=True)
    try:
        for index, font in enumerate(collection.fonts):
            if font["name"].getDebugName(4) == name:
                return index
    finally:
        collection.close()
    raise EnvironmentProblem(
        f"{path}: has no face {name!r}: apt-get install --reinstall fonts-noto-cjk"
    )


def _counts(text: str) -> tuple[int, int]:
    arabic = sum(1 for c in text if "\u0600" <= c <= "\u06ff" or "\ufb50" <= c <= "\ufeff")
    cjk = sum(
        1
        for c in text
        if "\u3000" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" or "\uff00" <= c <= "\uffef"
    )
    return arabic, cjk


def family_for(text: str) -> str:
    """The font family of the script ``text`` is mostly written in (the others fill in)."""
    arabic, cjk = _counts(text)
    if not arabic and not cjk:
        return "latin"
    return "arabic" if arabic >= cjk else "cjk"


def families_for(texts: list[str]) -> list[str]:
    """The families ``texts`` need: Latin always, Arabic and CJK only when used (parsing and
    subsetting a CJK font takes most of a second: a Latin-only certificate skips it)."""
    arabic, cjk = _counts("".join(texts))
    return ["latin", *(["arabic"] if arabic else []), *(["cjk"] if cjk else [])]


def _document(title: str, families: list[str]) -> FPDF:
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(title)
    pdf.set_creator("Statbox")
    for face, path in find_fonts().items():
        if face.family in families:
            index = _collection_index(path, face.collection_face) if face.collection_face else 0
            pdf.add_font(face.family, face.style, str(path), collection_font_number=index)
    pdf.set_fallback_fonts(families)
    pdf.set_text_shaping(True)  # HarfBuzz: joined Arabic, right to left; ligatures
    pdf.add_page()
    return pdf


def _line(pdf: FPDF, text: str, y: float, size: float, bold: bool = False) -> None:
    pdf.set_font(family_for(text), "B" if bold else "", size)
    pdf.set_xy(pdf.l_margin, y)
    pdf.cell(w=pdf.epw, h=size * 0.5, text=text, align="C")


def _pair(pdf: FPDF, texts: tuple[str, str], y: float, size: float, bold: bool = False) -> None:
    """English (left) and the hub's language (right) side by side; one centred line when
    they are the same."""
    english, local = texts
    if english == local:
        _line(pdf, english, y, size, bold)
        return
    half = (pdf.epw - 10) / 2
    for index, text in enumerate((english, local)):
        pdf.set_font(family_for(text), "B" if bold else "", size)
        pdf.set_xy(pdf.l_margin + index * (half + 10), y)
        pdf.cell(w=half, h=size * 0.5, text=text, align="C")


def _qr_code(pdf: FPDF, url: str, x: float, y: float, size: float) -> None:
    """``url`` as a QR code of side ``size`` mm, drawn as vector squares (crisp at any zoom)."""
    code = segno.make(url, error="m")
    rows = list(code.matrix_iter(scale=1, border=2))
    module = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for row_index, row in enumerate(rows):
        for column, dark in enumerate(row):
            if dark:
                pdf.rect(x + column * module, y + row_index * module, module, module, style="F")


def certificate_pdf(record: Mapping[str, Any], language: str = "en") -> bytes:
    """The PDF of certificate ``record``: one landscape A4 page, in English and, side by
    side, in the hub's ``language`` (one of :data:`statbox.i18n.LANGUAGES`)."""
    person = str(record.get("name") or record["trainee"])
    course = str(record["course"]["title"])
    words = certificate_words(record, language)
    texts = [person, course, str(record["issuer"]), str(record["trainee"])]
    texts += [local for _, local in words.values()]
    pdf = _document(f"Certificate: {person}, {course}", families_for(texts))
    pdf.set_draw_color(31, 78, 121)
    pdf.set_line_width(1.4)
    pdf.rect(10, 10, pdf.w - 20, pdf.h - 20)
    pdf.set_line_width(0.35)
    pdf.rect(14, 14, pdf.w - 28, pdf.h - 28)
    pdf.set_text_color(31, 78, 121)
    _pair(pdf, words["title"], 28, 30, bold=True)
    pdf.set_text_color(34, 34, 34)
    _pair(pdf, words["certifies"], 52, 14)
    _line(pdf, person, 64, 28, bold=True)
    _pair(pdf, words["passed"], 86, 14)
    _line(pdf, course, 97, 22, bold=True)
    _pair(pdf, words["score"], 115, 13)
    _line(pdf, str(record["issuer"]), 128, 14)
    pdf.set_text_color(85, 85, 85)
    small = [
        f"Certificate {record['certificate']}   {record['trainee']}, cohort {record['cohort']}"
        f"   {record['grader_version']}",
        f"Submission SHA-256 {record['submission_sha256']}",
        *check_lines(record),
    ]
    url = record.get("verify_url")
    if url:
        _qr_code(pdf, str(url), pdf.w - 54, pdf.h - 58, 30)
        pdf.set_font("latin", "", 7)
        pdf.set_xy(pdf.w - 54, pdf.h - 28)
        pdf.cell(w=30, h=3, text=words["scan"][0], align="C")
    for index, text in enumerate(small):
        pdf.set_font(family_for(text), "", 8)
        pdf.set_xy(24, 152 + index * 5)
        pdf.cell(w=pdf.w - 24 - 60, h=4, text=text, align="L")
    return bytes(pdf.output())
