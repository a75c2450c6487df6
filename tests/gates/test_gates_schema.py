"""Schema compatibility: the candidate must accept every input production accepts."""

import pytest

from app.gates import TYPE_WIDENINGS, Column, RuleResult, Signature, schema_compatible

PRODUCTION = Signature(
    inputs=(
        Column("age", "integer"),
        Column("income", "float", nullable=True),
        Column("country", "string", categories=("DE", "FR", "US")),
        Column("segment", "string", required=False),
    ),
    outputs=(Column("score", "float"), Column("label", "string")),
)


def check(candidate: Signature | None, production: Signature | None = PRODUCTION) -> RuleResult:
    return schema_compatible(rule="schema", candidate=candidate, production=production)


def with_inputs(*inputs: Column) -> Signature:
    return Signature(inputs=inputs, outputs=PRODUCTION.outputs)


def replace_input(name: str, column: Column | None) -> Signature:
    inputs = [c for c in PRODUCTION.inputs if c.name != name]
    if column is not None:
        inputs.append(column)
    return with_inputs(*inputs)


def test_identical_signatures_pass() -> None:
    result = check(PRODUCTION)
    assert result.passed
    assert result.kind == "schema_compatible"
    assert result.observed == {"problems": []}


def test_no_production_signature_passes_with_a_reason() -> None:
    result = check(PRODUCTION, production=None)
    assert result.passed
    assert "no production signature" in result.reason
    assert check(None, production=None).passed


def test_candidate_without_signature_fails_when_production_has_one() -> None:
    result = check(None)
    assert not result.passed
    assert "no signature" in result.reason


def test_removed_required_column_fails() -> None:
    result = check(replace_input("age", None))
    assert not result.passed
    assert result.observed["problems"] == ["input column 'age' was removed"]


def test_removed_optional_column_passes() -> None:
    assert check(replace_input("segment", None)).passed


def test_retyped_column_fails() -> None:
    result = check(replace_input("age", Column("age", "string")))
    assert not result.passed
    assert "input column 'age' changed type from 'integer' to 'string'" in result.reason


@pytest.mark.parametrize(("old", "new"), [("integer", "float"), ("integer", "number")])
def test_documented_widenings_are_allowed(old: str, new: str) -> None:
    assert new in TYPE_WIDENINGS[old]
    production = Signature(inputs=(Column("x", old),))
    assert check(Signature(inputs=(Column("x", new),)), production).passed


def test_narrowing_a_type_fails() -> None:
    production = Signature(inputs=(Column("x", "float"),))
    assert not check(Signature(inputs=(Column("x", "integer"),)), production).passed


def test_type_names_compare_case_insensitively() -> None:
    production = Signature(inputs=(Column("x", "Integer"),))
    assert check(Signature(inputs=(Column("x", " INTEGER "),)), production).passed


def test_narrowed_categorical_domain_fails_listing_removed_categories() -> None:
    result = check(replace_input("country", Column("country", "string", categories=("US", "DE"))))
    assert not result.passed
    assert "input column 'country' no longer accepts categories ['FR']" in result.reason


def test_widened_or_unrestricted_categorical_domain_passes() -> None:
    wider = Column("country", "string", categories=("DE", "FR", "US", "IT"))
    assert check(replace_input("country", wider)).passed
    assert check(replace_input("country", Column("country", "string"))).passed


def test_restricting_an_open_column_fails() -> None:
    result = check(replace_input("segment", Column("segment", "string", False, False, ("a",))))
    assert not result.passed
    assert "now restricted to categories ['a']" in result.reason


def test_new_required_column_fails_but_new_optional_column_passes() -> None:
    new_required = with_inputs(*PRODUCTION.inputs, Column("tenure", "integer"))
    result = check(new_required)
    assert not result.passed
    assert "new input column 'tenure' is required" in result.reason
    new_optional = with_inputs(*PRODUCTION.inputs, Column("tenure", "integer", required=False))
    assert check(new_optional).passed


def test_optional_column_made_required_fails() -> None:
    result = check(replace_input("segment", Column("segment", "string")))
    assert not result.passed
    assert "'segment' is now required" in result.reason


def test_nullable_narrowed_fails_and_widened_passes() -> None:
    result = check(replace_input("income", Column("income", "float", nullable=False)))
    assert not result.passed
    assert "'income' no longer accepts null" in result.reason
    assert check(replace_input("age", Column("age", "integer", nullable=True))).passed


def test_removed_or_retyped_output_fails() -> None:
    removed = Signature(inputs=PRODUCTION.inputs, outputs=(Column("score", "float"),))
    result = check(removed)
    assert not result.passed
    assert result.observed["problems"] == ["output column 'label' was removed"]
    retyped = Signature(
        inputs=PRODUCTION.inputs,
        outputs=(Column("score", "number"), Column("label", "string")),
    )
    result = check(retyped)
    assert not result.passed
    assert "output column 'score' changed type from 'float' to 'number'" in result.reason


def test_output_made_nullable_fails_and_new_output_passes() -> None:
    nullable = Signature(
        inputs=PRODUCTION.inputs,
        outputs=(Column("score", "float", nullable=True), Column("label", "string")),
    )
    assert "may now be null" in check(nullable).reason
    extra = Signature(inputs=PRODUCTION.inputs, outputs=(*PRODUCTION.outputs, Column("p", "float")))
    assert check(extra).passed


def test_every_problem_is_listed() -> None:
    candidate = Signature(
        inputs=(
            Column("age", "string"),
            Column("income", "float"),
            Column("country", "string", categories=("US",)),
            Column("tenure", "integer"),
        ),
        outputs=(),
    )
    result = check(candidate)
    assert not result.passed
    assert len(result.observed["problems"]) == 6
    assert result.reason == "; ".join(result.observed["problems"])


def test_signature_validation() -> None:
    with pytest.raises(ValueError, match="twice"):
        Signature(inputs=(Column("a", "integer"), Column("a", "float")))
    with pytest.raises(ValueError, match="name"):
        Column("", "integer")
    with pytest.raises(ValueError, match="type"):
        Column("a", " ")
    with pytest.raises(ValueError, match="categories"):
        Column("a", "string", categories="abc")  # type: ignore[arg-type]
    column = Column("a", "string", categories=["x", "y"])  # type: ignore[arg-type]
    assert column.categories == ("x", "y")
    assert hash(column) == hash(Column("a", "string", categories=("x", "y")))
