"""Loading policy sets: bad input is refused with every problem named, never half-loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies import (
    PolicyFileTooLargeError,
    PolicyLimits,
    PolicyLoadError,
    default_policy_dir,
    load_policy_set,
    policy_set_from_export,
    policy_set_from_sources,
)
from policies._source import split_policies

SCHEMA = (default_policy_dir() / "cntrust.cedarschema.json").read_text()

GOOD = """
@id("ok.permit")
@reason("fine")
permit (principal is Cntrust::Admin, action == Cntrust::Action::"read_policy", resource);
"""


def _problems(files: list[tuple[str, str]], schema: str = SCHEMA) -> list[str]:
    with pytest.raises(PolicyLoadError) as info:
        policy_set_from_sources(schema, files)
    return [str(p) for p in info.value.problems]


def test_syntax_error_names_file_line_and_id() -> None:
    text = (
        GOOD + '\n@id("broken")\n@reason("x")\npermit (principal, action, resource) when { 1 + };\n'
    )
    (problem,) = _problems([("bad.cedar", text)])
    assert problem.startswith("bad.cedar:6 [broken]: syntax error")


def test_unterminated_policy_is_reported_at_its_line() -> None:
    text = GOOD + '\n@id("open")\n@reason("x")\npermit (principal, action, resource)\n'
    (problem,) = _problems([("open.cedar", text)])
    assert problem.startswith("open.cedar:6 [open]: syntax error")


def test_schema_violation_names_policy_and_line() -> None:
    text = GOOD + (
        '\n@id("uses.unknown-attr")\n@reason("x")\n'
        "forbid (principal, action, resource is Cntrust::Node) when { resource.colour == 1 };\n"
    )
    (problem,) = _problems([("schema.cedar", text)])
    assert problem.startswith("schema.cedar:6 [uses.unknown-attr]:")
    assert "colour" in problem and "`uses.unknown-attr`" in problem


def test_unknown_action_in_policy_is_refused() -> None:
    text = (
        '@id("unknown.action")\n@reason("x")\n'
        'permit (principal, action == Cntrust::Action::"delete_everything", resource);\n'
    )
    problems = _problems([("a.cedar", text)])
    assert all(p.startswith("a.cedar:1 [unknown.action]:") for p in problems)
    assert any('unrecognized action `Cntrust::Action::"delete_everything"`' in p for p in problems)


def test_mistyped_comparison_is_refused() -> None:
    text = (
        '@id("typed")\n@reason("x")\n'
        "forbid (principal, action, resource is Cntrust::Node) "
        'when { resource.trust_permille < "high" };\n'
    )
    (problem,) = _problems([("t.cedar", text)])
    assert "[typed]" in problem


def test_every_problem_is_reported_at_once() -> None:
    files = [
        ("a.cedar", '@reason("no id")\npermit (principal, action, resource);\n'),
        ("b.cedar", '@id("no-reason")\npermit (principal, action, resource);\n'),
        ("c.cedar", GOOD + GOOD),  # duplicate @id
        ("d.cedar", '@id("syntax")\n@reason("x")\npermit (principal action, resource);\n'),
    ]
    problems = _problems(files)
    assert len(problems) == 4
    assert problems[0].startswith("a.cedar:1: policy lacks a non-empty @id")
    assert problems[1].startswith("b.cedar:1 [no-reason]: policy lacks a non-empty @reason")
    assert problems[2].startswith("c.cedar:6 [ok.permit]: duplicate @id (first at c.cedar:2)")
    assert problems[3].startswith("d.cedar:1 [syntax]: syntax error")


def test_schema_and_policy_problems_together() -> None:
    problems = _problems([("x.cedar", "permit (principal, action, resource) when {")], "{nope")
    assert any("schema is not JSON" in p for p in problems)
    assert any(p.startswith("x.cedar:1") for p in problems)


def test_invalid_schema_is_refused() -> None:
    bad = json.dumps({"Cntrust": {"entityTypes": {"A": {"shape": {"type": "Nope"}}}}})
    problems = _problems([("a.cedar", GOOD)], bad)
    assert any("invalid schema" in p for p in problems)


def test_templates_are_refused() -> None:
    text = '@id("tpl")\n@reason("x")\npermit (principal == ?principal, action, resource);\n'
    (problem,) = _problems([("t.cedar", text)])
    assert "templates are not supported" in problem


def test_too_large_policy_file_is_refused_before_parsing(pack_copy: Path) -> None:
    (pack_copy / "huge.cedar").write_text("// padding\n" * 30_000)
    with pytest.raises(PolicyFileTooLargeError) as info:
        load_policy_set(pack_copy)
    assert info.value.path.endswith("huge.cedar")
    assert info.value.size_bytes > info.value.limit_bytes == PolicyLimits().max_policy_file_bytes


def test_limits_are_configurable(pack_copy: Path) -> None:
    with pytest.raises(PolicyFileTooLargeError):
        load_policy_set(pack_copy, limits=PolicyLimits(max_policy_file_bytes=100))
    with pytest.raises(PolicyLoadError, match="policy files, limit 1"):
        load_policy_set(pack_copy, limits=PolicyLimits(max_policy_files=1))


def test_directory_needs_exactly_one_schema(pack_copy: Path, tmp_path: Path) -> None:
    (pack_copy / "cntrust.cedarschema.json").rename(tmp_path / "elsewhere.json")
    with pytest.raises(PolicyLoadError, match=r"need exactly one \*\.cedarschema\.json"):
        load_policy_set(pack_copy)
    with pytest.raises(PolicyLoadError, match="not a directory"):
        load_policy_set(tmp_path / "missing")


def test_version_ignores_layout_comments_and_order(pack_copy: Path) -> None:
    original = load_policy_set(pack_copy)
    for path in pack_copy.glob("*.cedar"):
        chunks = split_policies(path.read_text())
        path.write_text("// reordered\n\n" + "\n\n".join(c.text for c in reversed(chunks)))
    assert load_policy_set(pack_copy).version == original.version


def test_version_changes_with_meaning(pack_copy: Path) -> None:
    original = load_policy_set(pack_copy)
    path = pack_copy / "placement.cedar"
    path.write_text(path.read_text().replace("trust_permille < 800", "trust_permille < 700"))
    assert load_policy_set(pack_copy).version != original.version


def test_export_round_trips(pack_copy: Path) -> None:
    original = load_policy_set(pack_copy)
    again = policy_set_from_export(original.export())
    assert again.version == original.version
    assert [(p.id, p.file, p.line) for p in again.policies] == [
        (p.id, p.file, p.line) for p in original.policies
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        json.dumps({"format": "other"}),
        json.dumps({"format": "cntrust.policy-set/1"}),
    ],
)
def test_bad_export_is_refused(text: str) -> None:
    with pytest.raises(PolicyLoadError):
        policy_set_from_export(text)


def test_split_policies_ignores_semicolons_in_strings_and_comments() -> None:
    text = (
        '// a; comment\n@id("x;")\npermit (principal, action, resource) when { "a;b" == "\\";" };\n'
    )
    (chunk,) = split_policies(text)
    assert chunk.line == 2 and chunk.guess_id() == "x;"


def test_too_deeply_nested_policy_names_its_line() -> None:
    expr = "resource.revoked"
    for _ in range(150):
        expr = f"!({expr})"
    text = (
        GOOD
        + f'\n@id("deep")\n@reason("x")\nforbid (principal, action, resource) when {{ {expr} }};\n'
    )
    (problem,) = _problems([("deep.cedar", text)])
    assert problem.startswith("deep.cedar:6 [deep]:") and "nesting" in problem


def test_deeply_nested_json_export_is_refused() -> None:
    with pytest.raises(PolicyLoadError, match="not JSON"):
        policy_set_from_export("[" * 100_000 + "]" * 100_000)
