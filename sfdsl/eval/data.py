"""Dataset loading (JSONL/CSV) and mapping of data columns onto recipe inputs."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfdsl.errors import InputError
from sfdsl.inputs import convert
from sfdsl.types import parse_type

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
CSV_SUFFIXES = {".csv", ".tsv"}


class DataError(InputError):
    """Raised when an evaluation dataset cannot be read or does not fit the recipe."""


@dataclass(frozen=True)
class Row:
    """One raw dataset row and where it came from (for error messages)."""

    index: int
    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class Item:
    """One evaluation item: the recipe inputs built from a row, plus its gold answer.

    Attributes:
        index: Position of the row in the dataset (0-based).
        item_id: The row's ``id`` column, else its index as a string.
        inputs: Recipe inputs (mapped columns plus fixed ``-i`` inputs).
        gold: The gold answer taken from the gold column.
        key: Content hash identifying the item in the results store.
    """

    index: int
    item_id: str
    inputs: dict[str, Any]
    gold: Any
    key: str = field(default="")


def load_rows(path: str | Path) -> list[Row]:
    """Read a JSONL or CSV/TSV dataset.

    Args:
        path: Dataset file; the format is chosen by suffix (``.jsonl``,
            ``.ndjson``, ``.json`` are JSON lines, ``.csv``/``.tsv`` are CSV).

    Returns:
        The rows in file order.

    Raises:
        DataError: If the file is missing, unreadable, empty or malformed.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"dataset not found: {p}")
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read dataset {p}: {exc}") from exc
    if suffix in CSV_SUFFIXES:
        rows = _parse_csv(text, p, delimiter="\t" if suffix == ".tsv" else ",")
    elif suffix in JSONL_SUFFIXES or not suffix:
        rows = _parse_jsonl(text, p)
    else:
        raise DataError(f"{p}: unknown dataset format {suffix!r}; use .jsonl or .csv")
    if not rows:
        raise DataError(f"{p}: dataset has no rows")
    return rows


def _parse_jsonl(text: str, path: Path) -> list[Row]:
    rows: list[Row] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise DataError(f"{path}:{lineno}: JSON nested too deeply") from None
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            raise DataError(f"{path}:{lineno}: unusable JSON ({str(exc).split(';')[0]})") from None
        if not isinstance(value, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(value).__name__}")
        rows.append(Row(index=len(rows), line=lineno, values=value))
    return rows


def _parse_csv(text: str, path: Path, *, delimiter: str) -> list[Row]:
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames:
        raise DataError(f"{path}: CSV file has no header row")
    rows: list[Row] = []
    try:
        for record in reader:
            if None in record:
                raise DataError(f"{path}:{reader.line_num}: row has more fields than the header")
            if any(v is None for v in record.values()):
                raise DataError(f"{path}:{reader.line_num}: row has fewer fields than the header")
            rows.append(Row(index=len(rows), line=reader.line_num, values=dict(record)))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
    return rows


def parse_assignments(pairs: Iterable[str], *, what: str) -> dict[str, str]:
    """Parse ``key=value`` command-line pairs.

    Args:
        pairs: Strings of the form ``key=value``.
        what: Option name for error messages (e.g. ``--field``).

    Returns:
        An ordered mapping of keys to raw string values.

    Raises:
        DataError: If a pair has no ``=`` or an empty key, or a key repeats.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DataError(f"{what} expects key=value, got {pair!r}")
        if key in out:
            raise DataError(f"{what}: {key!r} given twice")
        out[key] = value
    return out


def coerce(value: Any, type_name: str | None, *, where: str) -> Any:
    """Convert a string value to a recipe input type (as ``sfdsl.inputs.convert`` does); non-strings pass through.

    Args:
        value: Raw value (CSV cells and ``-i`` values are strings).
        type_name: The recipe parameter's type name (``int``, ``float``,
            ``bool``, ``str``...); unknown or None keeps the value.
        where: Context for the error message.

    Returns:
        The converted value.

    Raises:
        DataError: If the string does not parse as the requested type.
    """
    if not isinstance(value, str) or type_name is None:
        return value
    type_ = parse_type(type_name.strip())
    if type_ is None:
        return value
    try:
        return convert(value, type_, name=where, from_text=True)
    except InputError:
        raise DataError(f"{where}: cannot read {value!r} as {type_name}") from None


def build_items(
    rows: Sequence[Row],
    *,
    input_types: Mapping[str, str | None],
    required: Collection[str],
    field_map: Mapping[str, str] | None = None,
    gold: str = "answer",
    fixed: Mapping[str, Any] | None = None,
    limit: int | None = None,
    source: str = "data",
) -> list[Item]:
    """Map dataset rows onto recipe inputs.

    Each recipe input is fed from (in order of precedence) a fixed ``-i``
    value, an explicit ``--field input=column`` mapping, or a column with the
    same name as the input.

    Args:
        rows: Rows from :func:`load_rows`.
        input_types: Recipe input names and their type names.
        required: Inputs without a default; each must get a value.
        field_map: Explicit ``input -> column`` mapping.
        gold: Name of the gold-answer column.
        fixed: Inputs fixed for every item (already coerced or raw strings).
        limit: Keep only the first ``limit`` rows.
        source: Dataset name for error messages.

    Returns:
        The items, in dataset order.

    Raises:
        DataError: On unknown inputs, missing columns or bad values.
    """
    field_map = dict(field_map or {})
    fixed = {k: coerce(v, input_types.get(k), where=f"-i {k}") for k, v in (fixed or {}).items()}
    for name in [*field_map, *fixed]:
        if name not in input_types:
            known = ", ".join(input_types) or "none"
            raise DataError(f"recipe has no input {name!r} (inputs: {known})")
    both = set(field_map) & set(fixed)
    if both:
        raise DataError(f"input {sorted(both)[0]!r} is given both by --field and by -i")
    rows = list(rows[:limit] if limit is not None else rows)
    columns = set().union(*(r.values.keys() for r in rows)) if rows else set()
    mapping = dict(field_map)
    for name in input_types:
        if name not in mapping and name not in fixed and name in columns:
            mapping[name] = name
    missing = [n for n in required if n not in mapping and n not in fixed]
    if missing:
        raise DataError(
            f"{source}: no column for recipe input {missing[0]!r}; "
            f"map one with --field {missing[0]}=COLUMN or fix it with -i {missing[0]}=VALUE "
            f"(columns: {', '.join(sorted(columns))})"
        )
    items: list[Item] = []
    seen_ids: set[str] = set()
    for row in rows:
        where = f"{source}:{row.line}"
        if gold not in row.values:
            raise DataError(f"{where}: row has no gold column {gold!r} (choose one with --gold)")
        inputs = dict(fixed)
        for name, column in mapping.items():
            if column not in row.values:
                raise DataError(f"{where}: row has no column {column!r} (for input {name!r})")
            inputs[name] = coerce(row.values[column], input_types.get(name), where=f"{where}: column {column!r}")
        item_id = str(row.values.get("id", row.index))
        if item_id in seen_ids:
            item_id = f"{item_id}#{row.index}"
        seen_ids.add(item_id)
        gold_value = row.values[gold]
        key = item_key(item_id, inputs, gold_value)
        items.append(Item(index=row.index, item_id=item_id, inputs=inputs, gold=gold_value, key=key))
    return items


def item_key(item_id: str, inputs: Mapping[str, Any], gold: Any) -> str:
    """A stable content hash for an item (id, inputs and gold answer)."""
    blob = json.dumps([item_id, dict(inputs), gold], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]
