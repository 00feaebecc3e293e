"""A small PDF writer: one landscape A4 page of text lines and rectangles, nothing more.

Enough for a certificate, without a dependency: PDF 1.4, the standard Helvetica fonts
(every reader has them, so nothing is embedded), WinAnsi text (characters outside it are
written as ``?``), a correct cross-reference table so strict readers open it.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 842, 595  # A4 landscape, in points
FONTS = {"regular": "F1", "bold": "F2"}


@dataclass(frozen=True)
class Text:
    text: str
    y: float
    size: float = 14
    font: str = "regular"
    x: float | None = None
    """Left edge in points; None centres the line on the page."""


@dataclass(frozen=True)
class Rectangle:
    x: float
    y: float
    width: float
    height: float
    line_width: float = 2


def _escape(text: str) -> bytes:
    encoded = text.encode("cp1252", errors="replace")
    return encoded.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _text_width(text: str, size: float, font: str) -> float:
    # Helvetica's average advance is close to 0.52 em (0.56 for bold): good enough to centre.
    return len(text) * size * (0.56 if font == "bold" else 0.52)


def render(items: list[Text | Rectangle], title: str = "") -> bytes:
    """The PDF document drawing ``items`` on one page."""
    content = bytearray()
    for item in items:
        if isinstance(item, Rectangle):
            content += (
                f"{item.line_width:g} w {item.x:g} {item.y:g} {item.width:g} {item.height:g} re S\n"
            ).encode()
        else:
            x = item.x
            if x is None:
                x = (WIDTH - _text_width(item.text, item.size, item.font)) / 2
            font = FONTS[item.font]
            content += f"BT /{font} {item.size:g} Tf {x:.1f} {item.y:g} Td (".encode()
            content += _escape(item.text) + b") Tj ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH} {HEIGHT}] "
            "/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length "
        + str(len(content)).encode()
        + b" >>\nstream\n"
        + bytes(content)
        + b"endstream",
        b"<< /Title (" + _escape(title) + b") /Producer (Statbox) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
