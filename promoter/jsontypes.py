"""The JSON promoter prints (``--output json``), as a type: what every ``to_json()``
returns (``Outcome``, ``LocalOutcome``, ``HistoryOutcome``, ``Verdict``, ...).

``JSON`` is read-only (``Sequence`` / ``Mapping``), so a ``dict[str, str]`` or a
``list[JSONObject]`` is a JSON value as it is; ``JSONObject`` is the dict a ``to_json()``
builds, its keys in the order they are printed. Pure: types only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

JSON: TypeAlias = "str | int | float | bool | Sequence[JSON] | Mapping[str, JSON] | None"
JSONObject: TypeAlias = "dict[str, JSON]"
