"""Positions between the client's code units (UTF-16 by default) and the server's characters (code points).

The features count characters as Python does; an editor counts UTF-16 units, which differ on lines holding
characters beyond the Basic Multilingual Plane (emoji). Requests' positions are converted on the way in,
and every range of a result on the way out (those that point into other files are left as they are).
"""

from __future__ import annotations

from typing import Any

import attrs
from lsprotocol import types
from pygls.workspace import TextDocument


def from_client(doc: TextDocument, position: types.Position) -> types.Position:
    """A request's position in code points."""
    found = doc.position_codec.position_from_client_units(doc.lines, position)
    return types.Position(line=found.line, character=found.character)


def to_client(doc: TextDocument, value: Any) -> Any:
    """``value`` (a result, or a list of them) with its positions in this document in client units."""
    if isinstance(value, list):
        return [to_client(doc, item) for item in value]
    if isinstance(value, types.Range):
        return doc.position_codec.range_to_client_units(doc.lines, value)
    if isinstance(value, types.Position):
        return doc.position_codec.position_to_client_units(doc.lines, value)
    if isinstance(value, types.Location) and value.uri != doc.uri:
        return value
    if isinstance(value, types.WorkspaceEdit) and value.changes:
        value.changes = {uri: to_client(doc, edits) if uri == doc.uri else edits
                         for uri, edits in value.changes.items()}
        return value
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            current = getattr(value, field.name)
            if current is not None and not isinstance(current, (str, int, float, bool)):
                setattr(value, field.name, to_client(doc, current))
    return value
