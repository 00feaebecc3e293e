"""What a lesson notebook computed, recorded so that a check can compare it.

A lesson ends by recording its key figures: ``record(port_calls=412, weekly_index=series)``.
When ``$STATBOX_RESULTS`` names a file (``statbox course check`` and the curriculum tests set
it), the values are written there as JSON; otherwise nothing is written, so trainees see no
difference. pandas objects are stored as plain data (``to_dict``), numpy scalars as numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULTS_ENV = "STATBOX_RESULTS"


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: pandas to dict/list, numpy to Python numbers."""
    if hasattr(value, "to_dict"):  # pandas Series / DataFrame
        return plain(value.to_dict())
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    return value


def record(**values: Any) -> dict[str, Any]:
    """Record named results of this notebook; returns them as plain data.

    Values recorded earlier in the same file are kept unless named again.
    """
    data = {name: plain(value) for name, value in values.items()}
    target = os.environ.get(RESULTS_ENV)
    if target:
        path = Path(target)
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing.update(data)
        path.write_text(json.dumps(existing, indent=1, default=str))
    return data


def read_results(path: Path) -> dict[str, Any]:
    """Results a notebook recorded in ``path`` (empty when it recorded none)."""
    return json.loads(path.read_text()) if path.exists() else {}
