"""Per-trainee variants: each trainee's exercise parameters, derived from a cohort secret.

A trainee's parameters are ``HMAC-SHA256(secret, course, exercise, trainee, name)`` mapped
onto each variant parameter's range or list of choices (see course.yaml's ``variant``). The
derivation is deterministic, so publishing (which writes the values into the trainee's copy)
and grading (which injects them again, whatever the submission claims) agree without storing
anything; without the secret nobody can compute another trainee's variant.

The secret belongs to the instructor: one per cohort, 32 random bytes in
``<state>/secrets/certify/<cohort>.key`` (mode 0600), made on first use.

``make_personaliser(course, secret)`` gives the ``personalise(trainee, notebook_json)``
hook the course publisher calls for each trainee's copy of the exercise.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from statbox.courses.model import Choice, Exercise, IntegerRange, LoadedCourse, VariantParameter
from statbox.courses.notebooks import parameters_cell, parse_parameters, source_of
from statbox.courses.publish import Personalise
from statbox.errors import BadInput
from statbox.privatefile import create_private_file

DERIVATION = b"statbox-variant-v1"
COHORT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DEFAULT_COHORT = "default"


def exercise_id(exercise: Exercise) -> str:
    """The exercise's short name: its template's file name without ``.ipynb``."""
    return PurePosixPath(exercise.notebook).stem


def check_cohort(cohort: str) -> str:
    if not COHORT_PATTERN.fullmatch(cohort):
        raise BadInput(
            f"cohort {cohort[:64]!r}: use lower-case letters, digits, . _ - (at most 63, "
            "starting with a letter or digit)"
        )
    return cohort


def cohort_secret(state_dir: Path, cohort: str, create: bool = True) -> bytes:
    """The cohort's secret, made on first use when ``create``; raise BadInput if missing."""
    check_cohort(cohort)
    directory = state_dir / "secrets" / "certify"
    path = directory / f"{cohort}.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    if not create:
        raise BadInput(f"cohort {cohort!r} has no secret yet ({path}); grade or publish first")
    written = create_private_file(path, secrets.token_bytes(32).hex().encode() + b"\n")
    return bytes.fromhex(written.decode().strip())


def _draw(secret: bytes, parts: tuple[str, ...]) -> int:
    message = b"\x00".join([DERIVATION, *(part.encode() for part in parts)])
    return int.from_bytes(hmac.new(secret, message, hashlib.sha256).digest(), "big")


def derive_value(secret: bytes, parts: tuple[str, ...], spec: VariantParameter) -> Any:
    number = _draw(secret, parts)
    if isinstance(spec, IntegerRange):
        return spec.min + number % (spec.max - spec.min + 1)
    assert isinstance(spec, Choice)
    return spec.choices[number % len(spec.choices)]


def derive_parameters(
    course_id: str,
    exercise_name: str,
    trainee: str,
    secret: bytes,
    variant: Mapping[str, VariantParameter],
) -> dict[str, Any]:
    """The trainee's value of every variant parameter (a 2^256 draw reduced to the range:
    the bias is far below anything a cohort could notice)."""
    return {
        name: derive_value(secret, (course_id, exercise_name, trainee, name), spec)
        for name, spec in sorted(variant.items())
    }


def parameters_for(loaded: LoadedCourse, trainee: str, secret: bytes) -> dict[str, Any]:
    exercise = loaded.course.exercise
    if exercise is None:
        return {}
    return derive_parameters(loaded.id, exercise_id(exercise), trainee, secret, exercise.variant)


def personalise_notebook(
    notebook: dict[str, Any], parameters: Mapping[str, Any], record: Mapping[str, Any]
) -> dict[str, Any]:
    """A copy of ``notebook`` whose parameters cell assigns ``parameters`` (other lines kept),
    with the values in ``metadata.papermill.parameters`` as papermill records them and
    ``record`` (trainee, course, exercise) in ``metadata.statbox``."""
    result = copy.deepcopy(notebook)
    _, cell = parameters_cell(result)
    declared = parse_parameters(source_of(cell))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise BadInput(f"not parameters of this notebook: {', '.join(unknown)}")
    lines = source_of(cell).splitlines()
    for name, value in parameters.items():
        pattern = re.compile(rf"^{re.escape(name)}\s*(:[^=]*)?=")
        for index, line in enumerate(lines):
            if pattern.match(line):
                lines[index] = f"{name} = {value!r}  # your variant"
                break
    cell["source"] = "\n".join(lines)
    parse_parameters(cell["source"])  # still only `name = literal` lines
    metadata = result.setdefault("metadata", {})
    papermill = metadata.setdefault("papermill", {})
    papermill["parameters"] = dict(parameters)
    metadata["statbox"] = {**metadata.get("statbox", {}), **dict(record)}
    return result


def make_personaliser(loaded: LoadedCourse, secret: bytes) -> Personalise:
    """The publisher's ``personalise(trainee, notebook_json) -> notebook_json`` hook for this
    course: it writes the trainee's variant into their copy of the exercise template.
    Any other notebook (a lesson, even one with the same parameters) is returned unchanged."""
    exercise = loaded.course.exercise
    template = None

    def code(cells: list[dict[str, Any]]) -> list[str]:
        # The template is told by its code: a translation of it (other words, the same code,
        # statbox.courses.translations) is the template too, and gets the variant.
        return [source_of(c) for c in cells if c.get("cell_type") == "code"]

    if exercise is not None:
        template = code(json.loads(loaded.path(exercise.notebook).read_text())["cells"])

    def personalise(trainee: str, notebook_json: dict[str, Any]) -> dict[str, Any]:
        if exercise is None or not exercise.variant:
            return notebook_json
        if code(notebook_json.get("cells", [])) != template:
            return notebook_json  # a lesson, or not the template as published
        parameters = parameters_for(loaded, trainee, secret)
        record = {"trainee": trainee, "course": loaded.id, "exercise": exercise_id(exercise)}
        return personalise_notebook(notebook_json, parameters, record)

    return personalise
