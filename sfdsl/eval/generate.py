"""Offline, seed-deterministic dataset generators with exact gold answers."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

Row = dict[str, Any]

#: difficulty -> (min steps, max steps, max operand magnitude)
ARITH_LEVELS: dict[int, tuple[int, int, int]] = {1: (1, 2, 20), 2: (3, 3, 100), 3: (4, 5, 1000)}

_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jude", "Kofi", "Lena"]
_THINGS = ["apples", "marbles", "stickers", "coins", "books", "pencils", "shells", "cards", "stamps", "beads"]

#: country -> capital, for yes/no capital questions
CAPITALS: dict[str, str] = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "Canada": "Ottawa",
    "Australia": "Canberra",
    "Brazil": "Brasilia",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "India": "New Delhi",
    "Mexico": "Mexico City",
    "Norway": "Oslo",
    "Peru": "Lima",
    "Poland": "Warsaw",
    "Portugal": "Lisbon",
    "Sweden": "Stockholm",
    "Turkey": "Ankara",
    "Argentina": "Buenos Aires",
    "China": "Beijing",
}


def arithmetic(n: int, *, seed: int = 0, levels: Sequence[int] = (1, 2, 3)) -> list[Row]:
    """Multi-step arithmetic word problems with integer answers.

    Difficulty sets the number of steps and the operand magnitude (see
    ``ARITH_LEVELS``); rows cycle through ``levels`` so a mixed set is balanced.
    Every intermediate value is a non-negative integer (divisions are exact).

    Args:
        n: Number of problems.
        seed: Random seed; the same seed gives the same rows.
        levels: Difficulty levels to draw from (1 = easiest).

    Returns:
        Rows ``{"id", "question", "answer", "difficulty"}``.

    Raises:
        ValueError: If a level is unknown or ``n`` is negative.
    """
    _check(n, levels, ARITH_LEVELS)
    rng = random.Random(f"arith:{seed}")
    rows: list[Row] = []
    for i in range(n):
        level = levels[i % len(levels)]
        question, answer = _word_problem(rng, level)
        rows.append({"id": f"arith-{i:05d}", "question": question, "answer": answer, "difficulty": level})
    return rows


def _word_problem(rng: random.Random, level: int) -> tuple[str, int]:
    lo, hi, mag = ARITH_LEVELS[level]
    steps = rng.randint(lo, hi)
    name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
    value = rng.randint(2, mag)
    sentences = [f"{name} has {value} {thing}."]
    for _ in range(steps):
        value, sentence = _step(rng, value, mag, thing)
        sentences.append(sentence)
    sentences.append(f"How many {thing} does {name} have now?")
    return " ".join(sentences), value


def _step(rng: random.Random, value: int, mag: int, thing: str) -> tuple[int, str]:
    ops = ["add", "add", "sub", "mul", "div"]
    while True:
        op = rng.choice(ops)
        if op == "add":
            k = rng.randint(1, mag)
            return value + k, rng.choice([f"Then they find {k} more.", f"A friend gives them {k} more {thing}."])
        if op == "sub" and value > 1:
            k = rng.randint(1, value - 1)
            return value - k, rng.choice([f"They give away {k}.", f"They lose {k} {thing}."])
        if op == "mul" and value * 2 <= mag * 10:
            k = rng.randint(2, 4 if mag <= 20 else 5)
            word = {2: "double", 3: "triple", 4: "quadruple"}.get(k)
            text = f"They {word} their {thing}." if word else f"Their number of {thing} becomes {k} times as large."
            return value * k, text
        if op == "div":
            divisors = [d for d in range(2, 10) if value % d == 0 and value // d >= 1]
            if divisors:
                d = rng.choice(divisors)
                return value // d, f"They share their {thing} equally among {d} boxes and keep one box."


def yesno(n: int, *, seed: int = 0, levels: Sequence[int] = (1, 2, 3)) -> list[Row]:
    """Yes/no fact questions from templates: comparisons, parity and capitals.

    Difficulty 1: comparisons of small numbers and parity of small numbers;
    2: larger numbers, capital cities; 3: comparisons of sums and products.
    Answers are balanced between ``"yes"`` and ``"no"`` in expectation.

    Args:
        n: Number of questions.
        seed: Random seed; the same seed gives the same rows.
        levels: Difficulty levels to draw from (1, 2, 3).

    Returns:
        Rows ``{"id", "question", "answer", "difficulty"}``.
    """
    _check(n, levels, {1: None, 2: None, 3: None})
    rng = random.Random(f"yesno:{seed}")
    makers: dict[int, list[Callable[[random.Random], tuple[str, bool]]]] = {
        1: [lambda r: _compare(r, 50), lambda r: _parity(r, 100)],
        2: [lambda r: _compare(r, 10_000), lambda r: _parity(r, 100_000), _capital],
        3: [_compare_expr, _capital],
    }
    rows: list[Row] = []
    for i in range(n):
        level = levels[i % len(levels)]
        question, truth = rng.choice(makers[level])(rng)
        rows.append(
            {"id": f"yesno-{i:05d}", "question": question, "answer": "yes" if truth else "no", "difficulty": level}
        )
    return rows


def _compare(rng: random.Random, mag: int) -> tuple[str, bool]:
    a, b = rng.sample(range(1, mag + 1), 2)
    word, truth = rng.choice([("greater", a > b), ("less", a < b)])
    return f"Is {a} {word} than {b}?", truth


def _parity(rng: random.Random, mag: int) -> tuple[str, bool]:
    a = rng.randint(1, mag)
    word = rng.choice(["even", "odd"])
    return f"Is {a} an {word} number?", (a % 2 == 0) == (word == "even")


def _capital(rng: random.Random) -> tuple[str, bool]:
    country = rng.choice(sorted(CAPITALS))
    if rng.random() < 0.5:
        return f"Is {CAPITALS[country]} the capital of {country}?", True
    other = rng.choice([c for c in sorted(CAPITALS) if c != country])
    return f"Is {CAPITALS[other]} the capital of {country}?", False


def _compare_expr(rng: random.Random) -> tuple[str, bool]:
    a, b, c, d = (rng.randint(2, 30) for _ in range(4))
    if rng.random() < 0.5:
        return f"Is {a} + {b} greater than {c} + {d}?", a + b > c + d
    return f"Is {a} times {b} greater than {c} times {d}?", a * b > c * d


GENERATORS: dict[str, Callable[..., list[Row]]] = {"arithmetic": arithmetic, "yesno": yesno}


def _check(n: int, levels: Sequence[int], known: dict[int, Any]) -> None:
    if n < 0:
        raise ValueError("n must be >= 0")
    if not levels:
        raise ValueError("at least one difficulty level is needed")
    bad = [lv for lv in levels if lv not in known]
    if bad:
        raise ValueError(f"unknown difficulty level {bad[0]}; choose from {sorted(known)}")
