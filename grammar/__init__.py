"""The .sf grammar and its cached LALR parser."""
