"""Engine jobs without a model: the worst-case KV growth a batch-invariant engine reserves."""

from __future__ import annotations

import asyncio

from sfdsl.runtime.jobs import GenJob, Reply, ScoreJob, _Cont, _Seq
from sfdsl.runtime.sampling import SamplingParams, TextStream


def reply() -> Reply:
    loop = asyncio.new_event_loop()
    try:
        return Reply(loop, loop.create_future())
    finally:
        loop.close()


def gen_job(prompt_len: int, *, n: int, max_tokens: int, n_ctx_seq: int = 4096) -> GenJob:
    return GenJob(prompt=list(range(prompt_len)), reply=reply(), n=n, sampling=SamplingParams(),
                  max_tokens=max_tokens, stop=(), logprobs=False, n_ctx_seq=n_ctx_seq)


def test_a_waiting_generate_job_reserves_its_prompt_and_every_sample() -> None:
    assert gen_job(10, n=3, max_tokens=20).future_cells() == 10 + 3 * 20
    assert gen_job(10, n=2, max_tokens=500, n_ctx_seq=100).future_cells() == 10 + 2 * 90  # a sample ends at the context


def test_a_running_generate_job_reserves_what_its_unfinished_samples_may_still_add() -> None:
    job = gen_job(10, n=3, max_tokens=20)
    job.fed = 10
    job.seqs = [_Seq(i, i, None, TextStream(), pos=10 + g, generated=g) for i, g in enumerate((4, 20, 7))]
    job.seqs[1].result = object()  # type: ignore[assignment]  # finished
    assert job.future_cells() == (20 - 4) + (20 - 7)


def test_a_score_job_reserves_its_prompt_and_unscored_continuation_tokens() -> None:
    job = ScoreJob(prompt=[1, 2, 3], reply=reply(), continuations=[[5], [6, 7, 8], [9, 9]])
    assert job.future_cells() == 3 + 2 + 1
    job.fed = 3
    job.conts[1].fed = 1
    assert isinstance(job.conts[1], _Cont) and job.future_cells() == 1 + 1
