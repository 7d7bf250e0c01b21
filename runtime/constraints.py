"""Re-export of sfdsl.constraints (the compiler checks constraints with the same code the runtime uses)."""

from __future__ import annotations

from sfdsl.constraints import UnsupportedRegex, gbnf_for_choices, gbnf_for_regex, gbnf_literal

__all__ = ["UnsupportedRegex", "gbnf_for_choices", "gbnf_for_regex", "gbnf_literal"]
