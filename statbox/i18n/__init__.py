"""The languages Statbox speaks, which one a person gets, and its messages.

Invariant: :data:`LANGUAGES` is the one list of supported languages. Settings validation
(``hub.language``), the catalogs under ``statbox/i18n/locale/<lang>/LC_MESSAGES/statbox.po``,
the pages' language form and the tests all read it; adding a language means adding it here
and shipping its catalog (``tests/i18n`` fails until every string is translated).

Catalogs are read from the ``.po`` files at run time (through Babel, then compiled in
memory): a fresh clone needs no compile step, and what is in the repository is what runs.
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES: tuple[str, ...] = ("en", "pt-BR", "zh-CN", "ar", "fr")
"""Languages of the hub (``hub.language``) and of a person's choice, as BCP 47 tags."""

SOURCE_LANGUAGE = "en"
"""The language the strings are written in: it has no catalog."""

NAMES: dict[str, str] = {
    "en": "English",
    "pt-BR": "Português (Brasil)",
    "zh-CN": "简体中文",
    "ar": "العربية",
    "fr": "Français",
}
"""Each language in its own words, as the language form lists them."""

COOKIE = "statbox-language"
"""The cookie holding a person's choice (path ``/``: the hub's pages and the classroom's)."""

JUPYTERLAB_LOCALES: dict[str, str] = {
    "en": "en",
    "pt-BR": "pt_BR",
    "zh-CN": "zh_CN",
    "ar": "ar_SA",
    "fr": "fr_FR",
}
"""JupyterLab's ``locale`` setting for each language: the locale of its published language
pack (``jupyterlab-language-pack-ar-SA`` and so on); ``en`` is JupyterLab's own."""

DOMAIN = "statbox"


def catalog_path(language: str) -> str:
    """Where the catalog of ``language`` lives, relative to ``statbox/i18n``."""
    return f"locale/{language.replace('-', '_')}/LC_MESSAGES/{DOMAIN}.po"


def supported(value: str | None) -> str | None:
    """``value`` when it is one of :data:`LANGUAGES` (any case), else None."""
    if not value:
        return None
    for language in LANGUAGES:
        if value.strip().lower() == language.lower():
            return language
    return None


def from_accept_language(header: str | None) -> str | None:
    """The supported language a browser's ``Accept-Language`` header prefers, or None.

    Quality values order the preferences (``q=0`` refuses); Babel's negotiation matches
    ``pt-BR`` to ``pt-BR`` and a bare ``pt`` or ``zh`` to the one we have of that language.
    """
    if not header:
        return None
    preferred: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0:
            preferred.append((-quality, position, tag.strip()))
    tags = [tag for _, _, tag in sorted(preferred)]
    found = negotiate_locale(tags, list(LANGUAGES), sep="-")
    if found is None:
        # Babel matches "pt" to "pt-BR" only through its aliases; a bare language matches
        # the one variant we ship of it.
        for tag in tags:
            base = tag.split("-")[0].lower()
            found = next((lang for lang in LANGUAGES if lang.split("-")[0].lower() == base), None)
            if found:
                break
    return supported(found)


def choose(saved: str | None, accept_language: str | None, hub_language: str) -> str:
    """A person's language: their saved choice, else their browser's, else the hub's."""
    return (
        supported(saved)
        or from_accept_language(accept_language)
        or supported(hub_language)
        or SOURCE_LANGUAGE
    )


def direction(language: str) -> str:
    """``rtl`` or ``ltr``, from Babel's data on the language's script."""
    try:
        return Locale.parse(language, sep="-").text_direction
    except (ValueError, UnknownLocaleError):
        return "ltr"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The messages of ``language`` (its ``.po`` compiled in memory); English as written."""
    if supported(language) in (None, SOURCE_LANGUAGE):
        return gettext.NullTranslations()
    source = resources.files("statbox.i18n").joinpath(catalog_path(language))
    with source.open("rb") as handle:
        catalog = read_po(handle, locale=Locale.parse(language, sep="-"))
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


@dataclass(frozen=True)
class Speaker:
    """What a page needs to speak one language: its tag, direction and translations."""

    language: str

    @classmethod
    def of(cls, saved: str | None, accept_language: str | None, hub_language: str) -> Speaker:
        """The speaker of a request: its cookie (:data:`COOKIE`), its ``Accept-Language``
        header and the hub's language, as :func:`choose` orders them."""
        return cls(choose(saved, accept_language, hub_language))

    @property
    def dir(self) -> str:
        return direction(self.language)

    def gettext(self, message: str) -> str:
        return translations(self.language).gettext(message)

    def text(self, message: str, **values: object) -> str:
        """``message`` translated, then its ``%(name)s`` placeholders filled from ``values``
        (as Jinja's new-style ``_()`` does; a template without the i18n extension uses it)."""
        translated = self.gettext(message)
        return translated % values if values else translated

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return translations(self.language).ngettext(singular, plural, n)


def _(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown (:class:`Speaker`)."""
    return message


LANGUAGE_ENV = "STATBOX_LANGUAGE"
"""The hub's language, in the environment of every user server (statbox.spawners.singleuser
makes it JupyterLab's default language)."""

LAB_TRANSLATION_PLUGIN = "@jupyterlab/translation-extension:plugin"


def lab_overrides(language: str) -> dict[str, dict[str, str]]:
    """JupyterLab's default settings (``overrides.json``) for a hub speaking ``language``:
    the ``locale`` of its language pack. A person still picks another in Lab's own menu
    (Settings > Language), which is kept in their settings."""
    known = supported(language) or SOURCE_LANGUAGE
    return {LAB_TRANSLATION_PLUGIN: {"locale": JUPYTERLAB_LOCALES[known]}}
