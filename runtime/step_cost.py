"""How long an engine step takes: an online linear model, and the prefill budget it implies."""

from __future__ import annotations

__all__ = ["StepCost"]


class StepCost:
    """Wall time of one ``llama_decode`` step as ``fixed + per_token × tokens``, refit after every step.

    A step's fixed part (weights streamed once, graph launch, Python) is shared by
    every token in it; each token adds its own compute. The fit is an exponentially
    weighted least-squares line, seeded with two pseudo-steps from ``fixed`` and
    ``per_token`` so it is defined before real steps vary in size.
    """

    def __init__(self, *, fixed: float = 0.02, per_token: float = 0.005, decay: float = 0.95) -> None:
        self._decay = decay
        self._s = [0.0] * 5  # weight, Σn, Σt, Σn², Σnt
        for n in (1, 64):
            self._add(n, fixed + per_token * n, 1.0)
        self.fixed, self.per_token = fixed, per_token

    def observe(self, n_tokens: int, seconds: float) -> None:
        """Record one step and refit."""
        self._s = [v * self._decay for v in self._s]
        self._add(n_tokens, seconds, 1.0)
        w, sn, st, snn, snt = self._s
        den = w * snn - sn * sn
        if den > 1e-9:
            self.per_token = max((w * snt - sn * st) / den, 1e-6)
            self.fixed = max((st - self.per_token * sn) / w, 0.0)

    def prefill_budget(self, interactive: int, *, share: float, cap: int) -> int:
        """Prompt tokens a step may add so it lasts at most ``1 + share`` times its interactive part.

        ``interactive`` counts the tokens of requests waiting on this step (decoding
        sequences, short prompts); long prompts get the rest of the time, at least one token.
        """
        alone = self.fixed + self.per_token * interactive
        return max(1, min(cap, int(share * alone / self.per_token)))

    def tokens_within(self, seconds: float) -> int:
        """Tokens a step can hold and still last about ``seconds`` (at least one)."""
        return max(1, int((seconds - self.fixed) / self.per_token))

    def _add(self, n: float, t: float, w: float) -> None:
        s = self._s
        s[0] += w
        s[1] += w * n
        s[2] += w * t
        s[3] += w * n * n
        s[4] += w * n * t
