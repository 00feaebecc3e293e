"""Which language a person gets: their saved choice, then their browser's, then the hub's;
and the settings accept only the languages Statbox ships."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from statbox.i18n import LANGUAGES, Speaker, choose, direction, from_accept_language
from statbox.settings.model import HubSettings
from statbox.spawners.singleuser import lab_language_arguments


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("pt-BR,pt;q=0.9,en;q=0.8", "pt-BR"),
        ("pt", "pt-BR"),  # a bare language matches the one variant we ship
        ("zh-CN,zh;q=0.9", "zh-CN"),
        ("zh", "zh-CN"),
        ("ar-AE,ar;q=0.9", "ar"),
        ("fr-CH, fr;q=0.9, en;q=0.8", "fr"),
        ("de-DE,de;q=0.9", None),  # nothing we speak: the hub's language applies
        ("en;q=0.2, ar;q=0.9", "ar"),  # quality values order, not position
        ("ar;q=0, fr", "fr"),  # q=0 refuses
        ("", None),
        ("garbage;;q=x,,", None),
    ],
)
def test_the_browser_preference(header, expected):
    assert from_accept_language(header) == expected


def test_a_saved_choice_beats_the_browser_and_the_browser_beats_the_hub():
    assert choose("fr", "zh-CN", "ar") == "fr"
    assert choose(None, "zh-CN", "ar") == "zh-CN"
    assert choose(None, "de", "ar") == "ar"
    # a forged or stale cookie is ignored, never echoed into a page
    assert choose('"><script>', "de", "ar") == "ar"


def test_arabic_is_right_to_left_and_the_others_left_to_right():
    assert {lang: direction(lang) for lang in LANGUAGES} == {
        "en": "ltr",
        "pt-BR": "ltr",
        "zh-CN": "ltr",
        "ar": "rtl",
        "fr": "ltr",
    }


def test_messages_come_from_the_shipped_catalogs():
    assert Speaker("ar").gettext("Sign in") == "تسجيل الدخول"
    assert Speaker("zh-CN").gettext("Check a certificate") == "验证证书"
    assert Speaker("en").gettext("Sign in") == "Sign in"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_settings_take_every_shipped_language(language):
    assert HubSettings(language=language).language == language


def test_the_settings_refuse_a_language_with_the_list():
    with pytest.raises(ValidationError, match="pt-BR"):
        HubSettings(language="pt")


def test_jupyterlab_gets_the_language_packs_locale_in_its_own_settings_folder():
    assert lab_language_arguments(None) == lab_language_arguments("en") == []
    assert lab_language_arguments("xx") == []  # an unknown value changes nothing
    (argument,) = lab_language_arguments("ar")
    folder = Path(argument.split("=", 1)[1])
    overrides = json.loads((folder / "overrides.json").read_text())
    shutil.rmtree(folder)
    assert overrides == {"@jupyterlab/translation-extension:plugin": {"locale": "ar_SA"}}
