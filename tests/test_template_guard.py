"""Template resource limits: bombs fail fast with a named limit, in bounded memory; normal templates still work."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sfdsl.templates import TemplateError, render, variables
from sfdsl.templates.guard import TemplateLimits

QUESTION = "what is the capital of France? " * 100

SLOW = "time limit"  # on a loaded machine the deadline may come first; either limit stops the bomb
# (template, a pattern of the limit it must hit)
RUN_TIME_BOMBS = [
    ("{{ 'a'*10**9 }}", r"'\*' would build"),
    ("{{ 7**99999999 }}", r"'\*\*' would build an integer"),
    ("{{ 10**(10**6) }}", r"'\*\*' would build an integer"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", f"iterations|{SLOW}"),
    ("{% for a in question %}{% for b in question %}{% for c in question %}{% endfor %}{% endfor %}{% endfor %}",
     f"iterations|{SLOW}"),
    ("{{ lipsum(10**6) }}", r"lipsum\(\) would build"),
    ("{{ lipsum(100, false, 20, 10**7) }}", r"lipsum\(\) would build"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}", "nest deeper"),
    ("{% macro f() %}{{ caller() }}{% endmacro %}{% macro g() %}{% call f() %}{{ g() }}{% endcall %}{% endmacro %}"
     "{{ g() }}", "nest deeper"),
    ("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}", "nest deeper"),
    ("{{ question * 10**9 }}", r"'\*' would build"),
    ("{{ [question] * 10**8 }}", r"'\*' would build"),
    ("{{ 'x'|center(10**9) }}", "center width"),
    ("{{ 'x'|center(1000000000) }}", "center width"),
    ("{{ 'x'.ljust(1000000000) }}", r"ljust\(\) width"),
    ("{{ (1).to_bytes(10**9, 'big') }}", r"to_bytes\(\) width"),
    ("{{ '%0999999999d' % 1 }}", "format width"),
    ("{{ '%*d' % (10**9, 1) }}", "format width"),
    ("{{ '{:>999999999}'.format(1) }}", "format width"),
    ("{{ '%0999999999d'|format(1) }}", "format width"),
    ("{{ question|replace('', question) }}", r"replace\(\) would build"),
    ("{{ question.replace(' ', question) }}", r"replace\(\) would build"),
    ("{{ [question, question]|join(question * 200) }}", "would build"),
    ("{{ question|indent(10**6, true) }}", "indent"),
    ("{{ [1]|batch(10**9, 0)|list }}", "batch width"),
    ("{% set ns = namespace(s='') %}{% for i in range(10**5) %}{% set ns.s = ns.s ~ question %}{% endfor %}",
     "characters"),
    ("{% set ns = namespace(s=question) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
     r"'\+' would build"),
    ("{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
     "integer over the size limit"),
    ("{{ [question] * 5000 }}", "an output expression would build"),
    ("{% for i in range(99999) %}" + "0123456789" * 100 + "{% endfor %}", "characters"),
    ("{% macro m() %}{% for i in range(99999) %}" + "x" * 1000 + "{% endfor %}{% endmacro %}{{ m() }}",
     "characters"),
    ("{{ question.translate({}) }}", "may not call translate"),
    ("{{ '%(a)999999999s' % {'a': 1} }}", "format width"),
    ("{{ '{:{}}'.format(1, 10**9) }}", "format width"),
    ("{{ range(100000)|map('string')|join(question) }}", f"join would build|{SLOW}"),
    ("{{ range(100000)|map('string')|map('string')|map('string')|list|length }}", f"iterations|{SLOW}"),
]


@pytest.mark.parametrize(("template", "limit"), RUN_TIME_BOMBS)
def test_template_bomb_hits_a_named_limit(template: str, limit: str) -> None:
    variables(template)  # the check-time scan evaluates nothing
    with pytest.raises(TemplateError) as info:
        render(template, {"question": QUESTION})
    assert re.search(limit, str(info.value)), str(info.value)


def test_render_has_a_time_limit() -> None:
    spin = "{% for i in range(90000) %}{{ question|length }}{% endfor %}"
    with pytest.raises(TemplateError, match=r"time limit of 0\.001 s"):
        render(spin, {"question": QUESTION}, limits=TemplateLimits(timeout_s=0.001))


def test_limits_are_configurable() -> None:
    assert render("{{ 'ab' * 3 }}", {}, limits=TemplateLimits(max_output_chars=6)) == "ababab"
    with pytest.raises(TemplateError, match="limit 5"):
        render("{{ 'ab' * 3 }}", {}, limits=TemplateLimits(max_output_chars=5))
    with pytest.raises(TemplateError, match="more than 3 iterations"):
        render("{% for x in xs %}{% endfor %}", {"xs": [1, 2, 3, 4]}, limits=TemplateLimits(max_iterations=3))


def test_ordinary_templates_still_render() -> None:
    template = (
        "{{ q[:4] }}|{% for r in rs %}{{ loop.index }}={{ r|upper }} {% endfor %}|{{ 2**10 }}|{{ 'ab'*2 }}|"
        "{{ 'x' ~ n ~ q[:1] }}|{{ rs|join(',') }}|{{ '%3d' % n }}|{{ '{:>3}'.format(n) }}|{{ q|length }}|"
        "{{ 7 / 2 }}|{{ 7 // 2 }}|{{ 7 % 4 }}|{{ -n }}|{{ rs|map('upper')|join }}|{{ d.k }}|"
        "{% filter upper %}done{% endfilter %}|{{ rs|batch(2)|list|length }}|{{ lipsum(1, false, 3, 4)|length > 0 }}"
    )
    out = render(template, {"q": "what now", "rs": ["a", "b", "c"], "n": 5, "d": {"k": "v"}})
    assert out == "what|1=A 2=B 3=C |1024|abab|x5w|a,b,c|  5|  5|8|3.5|3|3|-5|ABC|v|DONE|2|True"


@pytest.mark.parametrize(
    "template",
    ["{{ 'a'*10**9 }}", "{{ 7**99999999 }}", "{{ 'x'|center(1000000000) }}", "{{ ('a' ~ 'b') * 10**9 }}",
     "{% if 'a'*10**9 %}{% endif %}", "{{ ['a'] * 10**9 }}", "{{ '%0999999999d'|format(1) }}",
     "{{ 'a'.ljust(10**9) }}", "{{ 1" + "0" * 5000 + " }}", "{{" + "(" * 3000 + "1" + ")" * 3000 + "}}"],
)
def test_check_time_scan_evaluates_no_constant(template: str) -> None:
    try:
        assert variables(template) == set()
    except TemplateError as exc:  # too-long literals and too-deep nesting are plain template errors
        assert "nests too deeply" in str(exc) or "syntax error" in str(exc)


_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (768 * 2**20, 768 * 2**20))
    from sfdsl.templates import TemplateError, render, variables
    out = []
    job = json.load(sys.stdin)
    for template in job["templates"]:
        start = time.monotonic()
        variables(template)
        try:
            render(template, {"question": job["question"]})
            message = None
        except TemplateError as exc:
            message = str(exc)
        out.append({"message": message, "seconds": time.monotonic() - start})
    # VmHWM is this process image's own peak; ru_maxrss would carry over the forking parent's (pytest's) peak
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    out.append({"peak_kb": peak_kb})
    print(json.dumps(out))
""")


def test_bombs_stay_in_bounded_memory_in_a_capped_process() -> None:
    """Every bomb, at check and run time, in a process limited to 768 MiB of address space."""
    templates = [t for t, _ in RUN_TIME_BOMBS]
    job = json.dumps({"templates": templates, "question": QUESTION * 16})
    done = subprocess.run([sys.executable, "-c", _CHILD], input=job, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    *results, peak = json.loads(done.stdout)
    assert peak["peak_kb"] < 700 * 1024
    for template, result in zip(templates, results):
        assert result["message"] is not None, template
        assert "out of memory" not in result["message"], template
        assert result["seconds"] < 10, template  # a hang guard: each takes milliseconds



def _sfrun(*args: str) -> subprocess.CompletedProcess[str]:
    """`sfrun` in a child process capped at 1 GiB of address space."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    return subprocess.run([sys.executable, "-m", "sfdsl.cli", *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=cap)


CLI_BOMBS = ["{{ 'a'*10**9 }}", "{{ 7**99999999 }}", "{{ question * 10**9 }}", "{{ lipsum(10**6) }}",
             "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
             "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"]


def _bomb_recipe(*templates: str) -> str:
    prompts = "".join(f'  prompt p{i} = """{t}"""\n  s{i} = generate p{i} (max_tokens: 8)\n'
                      for i, t in enumerate(templates))
    returned = " + ".join(f"s{i}" for i in range(len(templates)))
    return f"recipe bomb(question: str) -> answer {{\n{prompts}  return answer: {returned}\n}}\n"


def test_sfrun_check_scans_template_bombs_without_evaluating(tmp_path: Path) -> None:
    recipe = tmp_path / "bombs.sf"
    recipe.write_text(_bomb_recipe(*CLI_BOMBS), encoding="utf-8")
    checked = _sfrun("check", str(recipe))
    assert checked.returncode == 0 and "bombs.sf: ok" in checked.stdout, checked.stderr


@pytest.mark.parametrize("template", CLI_BOMBS[2:])
def test_sfrun_run_template_bomb_is_a_located_step_error(template: str, tmp_path: Path) -> None:
    recipe = tmp_path / "bomb.sf"
    recipe.write_text(_bomb_recipe(template), encoding="utf-8")
    script = tmp_path / "script.json"
    script.write_text('["fine"]', encoding="utf-8")
    ran = _sfrun("run", str(recipe), "-i", "question=hi", "--backend", f"scripted:{script}", "--no-cache")
    assert ran.returncode == 3, ran.stderr
    assert f"{recipe}:2:" in ran.stderr and "prompt 'p0'" in ran.stderr and "Traceback" not in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1


def test_prompt_larger_than_the_context_fails_before_any_call() -> None:
    import sfdsl
    from sfdsl.errors import ContextOverflow
    from sfdsl.runtime.backends.scripted import ScriptedBackend

    program = sfdsl.compile('recipe r(q: str) -> answer { prompt p = "{{ q }}"  a = generate p  return a }')
    backend = ScriptedBackend(["never"], context_tokens=100)
    with pytest.raises(ContextOverflow, match=r"r/a: the prompt has 5000 characters.*context of 100 tokens"):
        program.recipe().run({"q": "x" * 5000}, backend=backend)
    assert backend.requests == []
    assert program.recipe().run({"q": "short"}, backend=backend).answer == "never"


_FUZZ = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    from hypothesis import HealthCheck, given, settings, strategies as st
    from sfdsl.templates.limits import TemplateLimits
    from sfdsl.templates import TemplateError, render

    atoms = st.sampled_from(["question", "'ab'", "10**9", "999999999", "7", "[question]", "range(100000)",
                             "lipsum(3)", "ns.s", "(question ~ question)", "{'a': question}", "'%0999999d'"])
    ops = st.sampled_from(["*", "**", "+", "~", "%", "//"])
    filters = st.sampled_from(["center(999999)", "indent(99999, true)", "join(question)", "list", "string",
                               "replace('', question)", "wordwrap(1, wrapstring=question)", "batch(999999, 0)|list",
                               "map('string')|list", "format(question)", "tojson", "pprint", "sum(start=[])"])
    methods = st.sampled_from(["center(999999)", "replace(' ', question)", "join(question)", "zfill(999999)",
                               "format(question, question)", "expandtabs(999999)"])

    def expr(depth):
        if depth == 0:
            return atoms
        sub = expr(depth - 1)
        return st.one_of(sub, st.tuples(sub, ops, sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
                         st.tuples(sub, filters).map(lambda t: f"({t[0]}|{t[1]})"),
                         st.tuples(sub, methods).map(lambda t: f"({t[0]}).{t[1]}"))

    loops = st.tuples(expr(3), st.integers(0, 3)).map(
        lambda t: "{% set ns = namespace(s=question) %}" + "{% for i in range(100000) %}" * t[1]
        + "{% set ns.s = " + t[0] + " %}{{ " + t[0] + " }}" + "{% endfor %}" * t[1])

    @settings(max_examples=int(sys.argv[1]), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(loops)
    def fuzz(template):
        try:
            out = render(template, {"question": "what is it? " * 300}, limits=TemplateLimits(timeout_s=0.5))
            assert len(out) <= 1_000_000
        except TemplateError as exc:
            assert "out of memory" not in str(exc), template

    fuzz()
    print("ok")
""")


def test_fuzzed_template_bombs_end_in_a_limit_in_bounded_memory() -> None:
    done = subprocess.run([sys.executable, "-c", _FUZZ, "60"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
