"""Hostile plan files: every one is refused (exit 2) with a located message, fast, without a traceback.

The three cases from the issue (an alias bomb, deep nesting, an unsupported tag) run through the CLI;
the fuzz test feeds random and mutated YAML (aliases, tags, deep nesting, control characters, up to
1 MB) to the loader in-process, where the time of each case is measured, and a sample of the same
kind of files through the CLI.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drplan.errors import PlanError
from drplan.plan.graph import compile_plan
from drplan.plan.loader import load_plan_text

ROOT = Path(__file__).resolve().parents[2]
DRPLAN = Path(sys.executable).parent / "drplan"  # the console script next to the interpreter
# per case, in-process CPU time (other processes on a busy machine do not count): hostile cases take
# milliseconds, the largest documents below about half a second
SECONDS = 2.0
LOCATED = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): ", re.M)

HEAD = "name: t\nazure: {subscription_id: s, resource_group: r, vault: v}\n"
VCENTER = "vcenter: {host: h, username: u, password: {env: PW}}\n"
TAIL = "master_targets: [{name: mt, os: linux}]\nvms:\n  - {name: a, os: linux, master_target: mt}\n"
BASE = HEAD + VCENTER + TAIL


def alias_bomb(levels: int = 9, fanout: int = 10) -> str:
    """``levels`` anchors, each a list of ``fanout`` aliases to the one before, under an unknown key."""
    lines = ["bomb:", "  l0: &l0 [lol]"]
    for n in range(1, levels + 1):
        lines.append(f"  l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * fanout) + "]")
    return "\n".join(lines) + "\n"


ALIAS_CASES = {
    "depends_on": BASE + "  - {name: b, os: linux, master_target: mt, depends_on: *l9}\n",
    "members": BASE + "replication_groups:\n  - {name: g, members: *l9}\n",
    "os": BASE + "  - {name: b, os: *l9, master_target: mt}\n",
}


def run_loader(text: str) -> tuple[list[str], float]:
    """Load and compile ``text`` as ``drplan validate`` does: its problems (none if valid) and the CPU
    time it took."""
    start = time.process_time()
    try:
        compile_plan(load_plan_text(text, "p.yaml"))
        problems: list[str] = []
    except PlanError as exc:
        problems = exc.problems
    return problems, time.process_time() - start


def validate_cli(*paths: Path, json_out: bool = False) -> subprocess.CompletedProcess:
    cmd = [DRPLAN, "validate", *map(str, paths), *(["--json"] if json_out else [])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)


def assert_refused_with_location(result: subprocess.CompletedProcess, path: Path, words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert LOCATED.match(first) and first.startswith(f"{path}:"), first
    assert words in first, first


# -- the three cases from the issue ------------------------------------------------------------------


@pytest.mark.parametrize("used_as", sorted(ALIAS_CASES))
def test_an_alias_bomb_is_refused_at_the_alias_that_passes_the_budget(tmp_path, used_as):
    text = alias_bomb() + ALIAS_CASES[used_as]
    problems, seconds = run_loader(text)
    assert problems == [
        "p.yaml:7:52: invalid YAML: aliases copy more than 200,000 nodes "
        "(each alias counts as a full copy of its anchor)"
    ]
    assert seconds < SECONDS
    path = tmp_path / f"bomb-{used_as}.yaml"
    path.write_text(text)
    assert_refused_with_location(validate_cli(path), path, "aliases copy more than 200,000 nodes")


@pytest.mark.parametrize(
    ("name", "nesting", "where"),
    [
        ("flow", "description: " + "[" * 100_000 + "]" * 100_000 + "\n", "7:1013"),
        ("block", "description:\n" + "".join(" " * n + "- \n" for n in range(1, 200)), "71:65"),
        ("mapping", "description:\n" + "".join(" " * n + f"k{n}:\n" for n in range(1, 200)), "71:65"),
    ],
)
def test_deep_nesting_is_refused_at_the_depth_cap(tmp_path, name, nesting, where):
    problems, seconds = run_loader(BASE + nesting)
    assert problems == [f"p.yaml:{where}: invalid YAML: the document nests deeper than 64 levels"]
    assert seconds < SECONDS
    path = tmp_path / f"deep-{name}.yaml"
    path.write_text(BASE + nesting)
    assert_refused_with_location(validate_cli(path), path, "nests deeper than 64 levels")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!timestamp nope", "'nope' is not a valid timestamp"),
        ("!!binary aGk=", "tag '!!binary' is not supported"),
        ("!!python/object:os.system x", "tag '!!python/object:os.system' is not supported"),
        ("!!set {a}", "tag '!!set' is not supported"),
        ("!!omap [a: 1]", "tag '!!omap' is not supported"),
        ("!!str [a]", "tag '!!str' is not supported"),
        ("!custom x", "tag '!custom' is not supported"),
        ("!!int ''", "'' is not a valid int"),
        ("!!int _", "'_' is not a valid int"),
        ("!!bool maybe", "'maybe' is not a valid bool"),
        ("2024-13-45", "'2024-13-45' is not a valid number or date: month must be in 1..12"),
        ("1" * 5000, "is not a valid number or date: more than 4,000 digits"),
        ("&a [*a]", "alias 'a' refers to a node that contains it; a plan cannot be recursive"),
    ],
)
def test_a_tag_or_scalar_the_loader_does_not_support_is_a_located_problem(value, message):
    problems, seconds = run_loader(BASE + f"description: {value}\n")
    assert len(problems) == 1 and problems[0].startswith("p.yaml:7:") and message in problems[0], problems
    assert seconds < SECONDS


def test_long_scalars_are_checked_in_linear_time_and_echoed_shortened():
    blank = "' " + " " * 200_000 + "x'"  # the duration pattern used to backtrack for minutes on this
    long = "x" * 100_000  # aliased into many fields: each problem echoes it shortened
    vms = "".join(
        f"  - {{name: v{i}, os: linux, master_target: mt, vcenter_name: *long, max_data_loss: *long}}\n"
        for i in range(200)
    )
    text = (
        HEAD + VCENTER + f"master_targets: [{{name: mt, os: linux}}]\ndefaults: {{max_data_loss: {blank}}}\n"
    )
    problems, seconds = run_loader(text + f"long: &long {long}\nvms:\n" + vms)
    assert len(problems) == 1 + 1 + 200 + 199 and all(len(p) < 300 for p in problems), problems[:2]
    assert seconds < SECONDS


def test_the_timestamp_tag_from_the_issue_exits_2_through_the_cli(tmp_path):
    path = tmp_path / "tag.yaml"
    path.write_text(BASE + "description: !!timestamp nope\n")
    result = validate_cli(path)
    assert_refused_with_location(result, path, "'nope' is not a valid timestamp")
    assert result.stdout.startswith(f"{path}:7:14: invalid YAML:")


# -- secrets -----------------------------------------------------------------------------------------

SECRET = "Hunter2-s3cret"
SECRET_FORMS = [
    f"{SECRET}",
    f"'{SECRET}'",
    "1234567890",
    f"!!int {SECRET}",
    f"!!float {SECRET}",
    f"!!bool {SECRET}",
    f"!!null {SECRET}",
    f"!!timestamp {SECRET}",
    "!!timestamp 2024-13-45",
    f"!{SECRET}",
    f"!{SECRET} tail",
    f"!!{SECRET} x",
    f"*{SECRET}",
    f"&{SECRET} [*{SECRET}]",
    f"[{SECRET}]",
    f"{{{SECRET}: 1}}",
    f"{{{SECRET}}}",
    f"{{env: X, {SECRET}: 1}}",
    f"{{{SECRET}: 1, {SECRET}: 2}}",
    f"{{env: !!int {SECRET}}}",
    f"{{env: {{{SECRET}: 1}}}}",
    f"{{<<: {{{SECRET}: 1}}}}",
    "{1234567890: x}",
    f"\n    {SECRET}: x",
    f"\n    ? {SECRET}\n    : x",
]


@pytest.mark.parametrize("form", SECRET_FORMS)
def test_a_value_where_a_secret_belongs_is_never_echoed(form):
    problems, _ = run_loader(HEAD + TAIL + f"vcenter:\n  host: h\n  username: u\n  password: {form}\n")
    assert problems, form
    assert all(LOCATED.match(p) for p in problems), problems
    secret = SECRET if SECRET in form else "1234567890"
    assert not any(secret in p or "Hunter2" in p for p in problems), problems


def test_a_secret_key_is_not_echoed_through_the_cli_json_either(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text(BASE.replace("password: {env: PW}", f"password: {{{SECRET}: 1}}"))
    for json_out in (False, True):
        result = validate_cli(path, json_out=json_out)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert "unknown field in a secret reference (not shown)" in result.stdout


# -- fuzz ----------------------------------------------------------------------------------------------

EXAMPLE = (ROOT / "plans" / "three-tier.yaml").read_text()
SNIPPETS = [
    "&a ",
    "*a",
    "&b [*a, *a, *a, *a]",
    "*b",
    "<<: *a\n",
    "!!timestamp x",
    "!!int y",
    "!!binary aGk=",
    "!x ",
    "!!str ",
    "!!map ",
    "!!seq ",
    "? ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "'",
    '"',
    "|\n",
    ">-\n",
    "\t",
    "\x00",
    "\x07",
    "\x1b",
    "\x85",
    "\u2028",
    "\ufeff",
    "\r\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "#",
    "\n",
    "  ",
    "name: x\n",
    "depends_on: [",
    "members: *a",
    "password: ",
    "os: *b",
    "1e999",
    "0x" + "f" * 40,
    "9" * 5000,
    "2024-02-30",
    ".nan",
    "~",
    "null",
    "no",
    "on",
]
FRAGMENTS = st.sampled_from(SNIPPETS) | st.text(max_size=20)


@st.composite
def mutated_plan(draw) -> str:
    """The three-tier example with a few random edits: insertions, deletions, repetitions."""
    text = EXAMPLE
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "repeat"]))
        if edit == "insert":
            text = text[:at] + draw(FRAGMENTS) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        else:
            piece = text[at : at + draw(st.integers(1, 80))]
            text = text[:at] + piece * draw(st.integers(2, 50)) + text[at:]
    return text


def _up_to(limit: int) -> st.SearchStrategy[int]:
    """A size up to ``limit``, often a large one (hypothesis favours small integers)."""
    return st.sampled_from([1, 64, 65, 999, 1001, limit // 10, limit]) | st.integers(1, limit)


@st.composite
def hostile(draw) -> str:
    """A structure meant to make a loader work hard, up to about 1 MB."""
    kind = draw(st.sampled_from(["bomb", "deep", "repeat", "wide"]))
    if kind == "bomb":
        levels, fanout = draw(st.integers(1, 12)), draw(st.integers(2, 12))
        use = draw(st.sampled_from(["depends_on", "members", "os"]))
        return alias_bomb(levels, fanout) + ALIAS_CASES[use].replace("*l9", f"*l{levels}")
    if kind == "deep":
        depth = draw(_up_to(200_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", ""), ("[{a: ", "}]")]))
        return BASE + "description: " + opener * depth + "x" + closer * draw(st.integers(0, depth))
    if kind == "repeat":
        piece = draw(FRAGMENTS) + draw(FRAGMENTS) + draw(FRAGMENTS)
        return BASE + "description: " + piece * (draw(_up_to(1_000_000)) // max(1, len(piece)))
    count = draw(_up_to(20_000))
    return BASE.replace("vms:\n", "vms:\n" + "  - {name: a, os: linux, master_target: mt}\n" * count)


DOCUMENTS = st.text(alphabet=st.sampled_from("[]{}:-?&*!|>'\"#%@`,.\n\t x0~\x07\x85"), max_size=300)


FUZZ = settings(
    deadline=None,  # the time bound is asserted below, on the loader alone
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.data_too_large],
)


def assert_located_and_fast(text: str) -> None:
    problems, seconds = run_loader(text)
    assert all(LOCATED.match(p) or p.startswith("p.yaml: ") for p in problems), problems[:3]
    assert seconds < SECONDS, (seconds, len(text), text[:200])


@settings(FUZZ, max_examples=100)
@given(st.one_of(DOCUMENTS, mutated_plan()))
def test_fuzz_random_and_mutated_documents_are_a_plan_or_located_problems(text):
    assert_located_and_fast(text)


ONE_MB = 1_000_000
VM = "{name: a, os: linux, master_target: mt}"


@settings(FUZZ, max_examples=40)
@given(hostile())
@example(BASE + "description: " + "[" * ONE_MB)
@example(BASE + "description: [" + "[], " * (ONE_MB // 4) + "]\n")
@example(BASE + "description: '" + "a" * ONE_MB)
@example(BASE + "d: &a [x]\ne: [" + "*a, " * (ONE_MB // 4) + "]\n")
@example(f"v: &v {VM}\n" + HEAD + VCENTER + "vms:\n" + "- {<<: *v}\n" * (ONE_MB // 11))
@example(BASE + f"  - {VM}\n" * 22_000)
def test_fuzz_bombs_deep_nesting_and_large_documents_are_refused_within_the_time_bound(text):
    assert_located_and_fast(text)


def test_fuzz_sample_through_the_cli_exits_0_or_2_without_a_traceback(tmp_path):
    rng = random.Random(16)
    paths = []
    for i in range(40):
        text = EXAMPLE
        for _ in range(rng.randint(1, 5)):
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice(SNIPPETS) * rng.randint(1, 3) + text[at:]
        paths.append(tmp_path / f"fuzz-{i}.yaml")
        paths[-1].write_text(text, encoding="utf-8")
    paths.append(tmp_path / "bomb.yaml")
    paths[-1].write_text(alias_bomb() + ALIAS_CASES["os"])
    result = validate_cli(*paths)
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
