"""A certificate says it in English and in the hub's language, side by side; the person's
name in any script. The PDF is read back with poppler's pdftotext (an independent reader)."""

from __future__ import annotations

from statbox.certify.certificates import certificate_html
from statbox.certify.pdf import certificate_pdf
from tests.certify.certificates import hub, issue
from tests.certify.test_certificates_pdf import pdf_lines


def test_an_arabic_hubs_pdf_says_it_in_arabic_and_english(tmp_path):
    record, _ = issue(hub(tmp_path, "dubai"), person="أمينة الحسن")
    text = " ".join(pdf_lines(certificate_pdf(record, "ar"), tmp_path))
    for english, arabic in [("CERTIFICATE", "شهادة"), ("This certifies that", "تشهد هذه الوثيقة")]:
        assert english in text and arabic in text, text
    assert "أمينة الحسن" in text, text


def test_a_chinese_hubs_pdf_and_html_say_it_in_chinese_and_english(tmp_path):
    record, _ = issue(hub(tmp_path, "hangzhou"), person="王小明")
    text = " ".join(pdf_lines(certificate_pdf(record, "zh-CN"), tmp_path))
    assert "证书" in text and "CERTIFICATE" in text and "王小明" in text, text
    page = certificate_html(record, "zh-CN")
    assert '<h1 lang="zh-CN" dir="ltr">证书</h1>' in page and "CERTIFICATE" in page


def test_an_english_hub_prints_english_once(tmp_path):
    record, _ = issue(hub(tmp_path, "kigali"))
    lines = pdf_lines(certificate_pdf(record), tmp_path)
    assert sum(line.count("CERTIFICATE") for line in lines) == 1, lines
