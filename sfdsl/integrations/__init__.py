"""Bridges to other ecosystems, each behind an optional extra: LangChain, MCP, Pygments."""
