"""The GBNF checker accepts what llama.cpp's grammar parser accepts and rejects the rest, with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from sfdsl.gbnf import gbnf_problem

VALID = [
    'root ::= "yes" | "no"',
    'root ::= [0-9]+ ("." [0-9]{1,2})?',
    'root ::= item ("," item)*\nitem ::= [a-z]+ # a comment\n',
    'root ::= "a" |',
    'root ::= x{2,}\nx ::= [^\\n\\x00]',
    'root ::= (\n  "a"\n  | "b"\n)',
    'root ::= "\\u00e9" [\\]\\[] .',
    'root ::= list\nlist ::= "[" (list | "x")* "]"',
    'root ::= <[1000]> !<[1000]> <|im_end|>',
    'root ::= ("a"?)*',  # llama.cpp sees only directly empty alternatives as empty
    'root ::= x*\nx ::= "a"?',
    'root ::= "a"{0} "b"{2,4} "c"{3,}',
]

INVALID = [
    ('root ::= answer', "undefined rule 'answer'"),
    ('answer ::= "x"', "no 'root' rule"),
    ('root = "x"', "expected '::='"),
    ('root ::= "x" )', "expected a newline"),
    ('root ::= ("x"', "expected ')'"),
    ('root ::= "x', "unexpected end"),
    ('root ::= "\\q"', "unknown escape"),
    ('root ::= "\\x4"', "hex digits"),
    ('root ::= * "x"', "needs an item"),
    ('root ::= "x"{2', "expected '}'"),
    ('root ::= expr\nexpr ::= expr "+" "1" | "1"', "left-recursive"),
    ('root ::= a\na ::= b? a "x"\nb ::= "y"', "left-recursive"),
    ('root ::= ("a" | )*', "left-recursive"),
    ('root ::= ""*', "needs an item"),
    ('root ::= x_y\nx_y ::= "a"', "expected a newline"),
]


@pytest.mark.parametrize("grammar", VALID)
def test_grammars_llama_accepts_pass(grammar: str) -> None:
    assert gbnf_problem(grammar) is None


@pytest.mark.parametrize(("grammar", "reason"), INVALID)
def test_grammars_llama_rejects_fail_with_a_reason(grammar: str, reason: str) -> None:
    problem = gbnf_problem(grammar)
    assert problem is not None and reason in problem.message
    assert 0 <= problem.offset <= len(grammar)


@pytest.mark.real_model
def test_the_checker_agrees_with_llama_cpp() -> None:
    from sfdsl.runtime.backends.llama import LlamaBackend

    backend: Any = LlamaBackend.from_params({"model": "default"})
    try:
        model = backend.engine.model
        for grammar in VALID + [g for g, _ in INVALID]:
            sampler = model.lib.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
            accepted = bool(sampler)
            if accepted:
                model.lib.llama_sampler_free(sampler)
            assert accepted == (gbnf_problem(grammar) is None), grammar
    finally:
        import asyncio

        asyncio.run(backend.aclose())
