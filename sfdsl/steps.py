"""The declared parameters of every step, mode and model: one table the checker, cost model and runtime share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParamSpec:
    """One step parameter: its type name, whether it is required, and a one-line meaning."""

    type: str
    required: bool = False
    doc: str = ""
    one_of: tuple[str, ...] = ()  # allowed literal values, when the parameter is an enumeration


SAMPLING = {
    "temperature": ParamSpec("float", doc="sampling temperature; 0 is greedy"),
    "top_p": ParamSpec("float", doc="nucleus sampling mass"),
    "top_k": ParamSpec("int", doc="top-k cut-off; 0 disables"),
    "max_tokens": ParamSpec("int", doc="tokens generated at most"),
    "stop": ParamSpec("list[str]", doc="stop strings"),
    "seed": ParamSpec("int", doc="base seed; sample i uses seed + i"),
}

GENERATE = {
    **SAMPLING,
    "n": ParamSpec("int", doc="number of samples, decoded as one batch"),
    "choices": ParamSpec("list[str]", doc="constrain the output to one of these strings"),
    "regex": ParamSpec("regex", doc="constrain the output to match this regex"),
    "grammar": ParamSpec("str", doc="constrain the output with a GBNF grammar"),
    "logprobs": ParamSpec("bool", doc="return the samples' log-probabilities"),
}

DEEPEN = {
    **SAMPLING,
    "n": ParamSpec("int", doc="parallel samples"),
    "budget": ParamSpec("int", required=True, doc="first token budget b0"),
    "gamma": ParamSpec("float", doc="budget growth per round (default 2.0)"),
    "max_total": ParamSpec("int", required=True, doc="cap on tokens generated per sample"),
    "trigger": ParamSpec("str", doc="text appended before continuing an unfinished answer"),
    "done": ParamSpec("regex", doc="an answer is finished when it matches this"),
}

EXTRACT_MODES = ("number", "int", "text", "list", "regex", "choice", "bool")
EXTRACT = {
    "case": ParamSpec("str", doc="'lower' (default), 'upper' or 'keep'", one_of=("lower", "upper", "keep")),
    "strip": ParamSpec("bool", doc="strip whitespace and punctuation (default true)"),
    "last": ParamSpec("bool", doc="take the last match rather than the first (default true)"),
}

EVALUATE_MODES = {
    "choice": {
        "options": ParamSpec("list[str]", required=True, doc="the continuations compared, e.g. [' (A)', ' (B)']"),
        "positive": ParamSpec("str", doc="the option whose probability is the score (default: the first)"),
    },
    "rating": {
        "scale": ParamSpec("int", doc="highest digit of the rating (default 9)"),
    },
    "likelihood": {
        "of": ParamSpec("any", required=True, doc="the continuation (or list of them) to score"),
        "normalize": ParamSpec("bool", doc="length-normalise the log-likelihood (default true)"),
    },
    "critique": {
        **SAMPLING,
        "pass": ParamSpec("regex", required=True, doc="the critique passes when it matches this"),
        "fail": ParamSpec("regex", doc="the critique fails when it matches this (checked first)"),
    },
}

VOTE_MODES = {
    "majority": {
        "stop": ParamSpec("str", doc="'unbeatable': stop once the leader cannot be overtaken", one_of=("unbeatable",)),
        "margin": ParamSpec("float", doc="stop once the leader's share margin exceeds this"),
    },
    "weighted": {
        "weights": ParamSpec("list[float]", doc="one weight per vote (for `vote N times`, use `score`)"),
        "stop": ParamSpec("str", doc="'unbeatable' early stop", one_of=("unbeatable",)),
        "margin": ParamSpec("float", doc="early-stop margin"),
    },
    "llm": {
        **SAMPLING,
        "prompt": ParamSpec("prompt", doc="selection prompt; default: Universal Self-Consistency's"),
    },
}

REFINE = {
    "max": ParamSpec("int", required=True, doc="maximum number of rounds"),
    "keep": ParamSpec("str", doc="'last' (default) or 'best' (highest `score`)", one_of=("last", "best")),
}

MAP = {"limit": ParamSpec("int", doc="at most this many items (required when the list length is unknown)")}

SEARCH_STRATEGIES = {
    "beam": {
        "depth": ParamSpec("int", required=True, doc="maximum depth"),
        "beam": ParamSpec("int", required=True, doc="states kept per level"),
        "join": ParamSpec("str", doc="text placed between a state and its next step (default newline)"),
        "done": ParamSpec("regex", doc="a state matching this is final"),
    },
    "mcts": {
        "simulations": ParamSpec("int", required=True, doc="number of simulations"),
        "depth": ParamSpec("int", required=True, doc="maximum depth"),
        "c": ParamSpec("float", doc="UCB exploration constant (default 1.0)"),
        "width": ParamSpec("int", doc="children a node gets before selection descends past it (default 2)"),
        "join": ParamSpec("str", doc="text placed between a state and its next step"),
        "done": ParamSpec("regex", doc="a state matching this is final"),
    },
}
SEARCH_PARTS = ("expand", "value")

MODEL_BACKENDS = ("llama", "openai", "scripted")

ROLES = ("system", "user", "assistant")

DEFAULT_MAX_TOKENS = 256
DEFAULT_TRIGGER = "Wait, let me re-check."
