"""Certificates name the person in any script and say the truth about how to check them.

On main the PDF writer knew only cp1252: an Arabic or Chinese name, and the China values
file's region (the issuer), printed as ``???``; the text said ``statbox certify verify
<id>.json`` while the file is ``alice.json``. Here the text is read back from the PDF with
poppler's ``pdftotext`` (an independent reader), and the QR code is read back from the page
rendered by ``pdftoppm``, module by module.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import segno
import yaml
from PIL import Image

from statbox.certify.certificates import certificate_html, person_name
from statbox.certify.pdf import certificate_pdf
from statbox.certify.trust import issuer_name
from statbox.errors import EnvironmentProblem
from statbox.settings.model import HubSettings
from tests.certify.certificates import KIGALI, hub, issue

ROOT = Path(__file__).resolve().parents[2]
BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
NAMES = {
    "arabic": "أمينة الحسن",
    "chinese": "王小明",
    "portuguese": "João Gonçalves da Conceição",
}


def poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing: apt-get install poppler-utils")
        pytest.skip(f"{tool} is missing (apt-get install poppler-utils)")
    return path


def pdf_lines(content: bytes, tmp_path: Path) -> list[str]:
    """The PDF's text lines as pdftotext reads them, bidi control characters removed."""
    path = tmp_path / "certificate.pdf"
    path.write_bytes(content)
    text = subprocess.run(
        [poppler("pdftotext"), "-layout", str(path), "-"], capture_output=True, check=True
    ).stdout.decode()
    return [" ".join(BIDI_CONTROLS.sub("", line).split()) for line in text.splitlines()]


@pytest.mark.parametrize("script", sorted(NAMES))
def test_the_pdf_names_the_person_in_their_script(script, tmp_path):
    name = NAMES[script]
    record, _ = issue(hub(tmp_path, "kigali"), person=name)
    lines = pdf_lines(certificate_pdf(record), tmp_path)
    assert name in lines, lines
    assert not any("?" in line for line in lines if "http" not in line), lines


def test_the_china_values_files_issuer_prints_right(tmp_path):
    values = yaml.safe_load((ROOT / "helm/statbox/values-china.yaml").read_text())
    issuer = issuer_name(HubSettings(**values["statbox"]["hub"]))
    assert "中国区域中心" in issuer
    record, _ = issue(hub(tmp_path, "hangzhou"), person="王小明", issuer=issuer)
    lines = pdf_lines(certificate_pdf(record), tmp_path)
    assert issuer in lines, lines


def test_the_check_line_names_the_file_and_the_qr_code_opens_the_verification_page(tmp_path):
    record, _ = issue(hub(tmp_path, "kigali"))
    url = f"{KIGALI}/services/classroom/verify/{record['certificate']}"
    content = certificate_pdf(record)
    lines = pdf_lines(content, tmp_path)
    assert "Check it: statbox certify verify alice.json" in lines  # the report's file name
    assert f"or open {url}" in lines
    assert "alice.json" in certificate_html(record) and url in certificate_html(record)
    # the QR code as printed: render the page and read each module's colour
    dpi = 300
    subprocess.run(
        [
            poppler("pdftoppm"),
            "-r",
            str(dpi),
            "-png",
            "-singlefile",
            tmp_path / "certificate.pdf",
            tmp_path / "page",
        ],
        check=True,
    )
    page = Image.open(tmp_path / "page.png").convert("L")
    expected = [list(row) for row in segno.make(url, error="m").matrix_iter(scale=1, border=2)]
    # where pdf.py draws it: 30 mm square, 54 mm from the right and 58 mm from the bottom
    module = 30 / len(expected) * dpi / 25.4
    left = (297 - 54) * dpi / 25.4
    top = (210 - 58) * dpi / 25.4
    read = [
        [
            page.getpixel((left + (c + 0.5) * module, top + (r + 0.5) * module)) < 128
            for c in range(len(expected))
        ]
        for r in range(len(expected))
    ]
    assert read == [[bool(v) for v in row] for row in expected]


def test_missing_fonts_are_named_with_the_package_to_install(tmp_path, monkeypatch):
    record, _ = issue(hub(tmp_path, "kigali"))
    monkeypatch.setenv("STATBOX_FONT_DIRS", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match="apt-get install fonts-noto-cjk fonts-noto-core"):
        certificate_pdf(record)


def test_the_name_comes_from_the_claim_then_the_settings_then_the_username():
    people = {"amina": "Amina Uwase"}
    assert person_name("amina", people, {"name": "  أمينة   الحسن "}) == "أمينة الحسن"
    assert person_name("amina", people, {"name": ""}) == "Amina Uwase"
    assert person_name("amina", people) == "Amina Uwase"
    assert person_name("joao", people) == "joao"
