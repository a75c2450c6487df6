"""MLflow search: filter strings, ``order_by`` clauses and page tokens, as MLflow parses them.

A filter is comparisons joined by ``AND``: ``name = 'x'``, ``name LIKE 'fraud%'``,
``tags.team = 'risk'``, ``tag.`mlflow.prompt.is_prompt` != 'true'``, ``run_id IN ('a', 'b')``,
``version_number >= 3``. Matching runs in Python over the candidates a page needs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.mlflow.errors import invalid

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<list>\((?:[^()'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")*\))
      | (?P<op>!=|<>|<=|>=|=|<|>)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<key>(?:[A-Za-z_][\w]*\.)?`[^`]+`|[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)
_WORD_OPS = ("NOT ILIKE", "NOT LIKE", "NOT IN", "ILIKE", "LIKE", "IN")


@dataclass(frozen=True)
class Comparison:
    field: str
    """``name``, ``run_id``, ``source_path``, ``version_number``, ... or ``tag:<key>``."""
    op: str
    value: Any


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _field(key: str) -> str:
    key = key.strip()
    for prefix in ("tags.", "tag."):
        if key.lower().startswith(prefix):
            rest = key[len(prefix) :]
            return "tag:" + (rest[1:-1] if rest.startswith("`") else rest)
    if key.startswith("`"):
        return key[1:-1]
    return key.lower()


@dataclass(frozen=True)
class SearchCall:
    """The fields of a search call (models or versions) as the client sent them."""

    filter_string: str | None
    max_results: Any
    order_by: list[str]
    page_token: str | None


def parse_filter(text: str | None) -> list[Comparison]:
    """The comparisons of a filter string; INVALID_PARAMETER_VALUE when it does not parse."""
    if not text or not text.strip():
        return []
    clauses = re.split(r"\s+AND\s+(?=(?:[^'\"]|'[^']*'|\"[^\"]*\")*$)", text.strip(), flags=re.I)
    return [_parse_clause(clause, text) for clause in clauses]


def _parse_clause(clause: str, whole: str) -> Comparison:
    match = _TOKEN.match(clause)
    if match is None or match.group("key") is None:
        raise invalid(f"invalid filter {whole!r}: cannot read a field in {clause!r}")
    field = _field(match.group("key"))
    rest = clause[match.end() :].strip()
    op = None
    upper = rest.upper()
    for word in _WORD_OPS:
        if upper.startswith(word + " ") or upper.startswith(word + "("):
            op, rest = word, rest[len(word) :].strip()
            break
    if op is None:
        m = re.match(r"(!=|<>|<=|>=|=|<|>)", rest)
        if m is None:
            raise invalid(f"invalid filter {whole!r}: no comparison operator in {clause!r}")
        op, rest = ("!=" if m.group(1) == "<>" else m.group(1)), rest[m.end() :].strip()
    value: Any
    if op.endswith("IN"):
        if not (rest.startswith("(") and rest.endswith(")")):
            raise invalid(f"invalid filter {whole!r}: {op} needs a list like ('a', 'b')")
        items = re.findall(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^,\s()]+", rest[1:-1])
        value = [_unquote(i) if i[0] in "'\"" else i for i in items]
    elif rest[:1] in ("'", '"') and rest[-1:] == rest[:1] and len(rest) >= 2:
        value = _unquote(rest)
    elif re.fullmatch(r"-?\d+(?:\.\d+)?", rest):
        value = float(rest) if "." in rest else int(rest)
    else:
        raise invalid(f"invalid filter {whole!r}: cannot read the value in {clause!r}")
    return Comparison(field=field, op=op, value=value)


def _like(pattern: str, value: str, *, ignore_case: bool) -> bool:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    flags = re.S | (re.I if ignore_case else 0)
    return re.fullmatch("".join(parts), value, flags) is not None


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op in ("IN", "NOT IN"):
        inside = actual is not None and str(actual) in [str(v) for v in expected]
        return inside if op == "IN" else not inside
    if op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
        if actual is None:
            return op.startswith("NOT")
        hit = _like(str(expected), str(actual), ignore_case="ILIKE" in op)
        return not hit if op.startswith("NOT") else hit
    if op == "!=":
        return actual is None or str(actual) != str(expected)
    if actual is None:
        return False
    if op == "=":
        if isinstance(expected, int | float) and not isinstance(actual, str):
            return bool(actual == expected)
        return str(actual) == str(expected)
    try:
        a, e = float(actual), float(expected)
    except (TypeError, ValueError):
        a, e = str(actual), str(expected)  # type: ignore[assignment]
    return {"<": a < e, "<=": a <= e, ">": a > e, ">=": a >= e}[op]


def matches(
    comparisons: Sequence[Comparison], fields: Mapping[str, Any], tags: Mapping[str, Any]
) -> bool:
    """Whether a row (its searchable fields and its tags) passes every comparison."""
    for c in comparisons:
        if c.field.startswith("tag:"):
            actual = tags.get(c.field[4:])
        elif c.field in fields:
            actual = fields[c.field]
        else:
            raise invalid(
                f"invalid filter: unknown field {c.field!r} "
                f"(searchable: {', '.join(sorted(fields))}, tags.<key>)"
            )
        if not _compare(c.op, actual, c.value):
            return False
    return True


def sort(
    rows: list[dict[str, Any]],
    order_by: Sequence[str],
    *,
    allowed: Mapping[str, str],
    default: Sequence[tuple[str, bool]],
) -> list[dict[str, Any]]:
    """Rows ordered by MLflow ``order_by`` clauses (``"name ASC"``, ``"version_number DESC"``);
    ``allowed`` maps a clause's field to the row key."""
    keys: list[tuple[str, bool]] = []
    for clause in order_by:
        parts = clause.strip().split()
        if not parts or len(parts) > 2:
            raise invalid(f"invalid order_by clause {clause!r}")
        field = parts[0].strip("`").lower()
        if field not in allowed:
            raise invalid(
                f"invalid order_by field {parts[0]!r} (allowed: {', '.join(sorted(allowed))})"
            )
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise invalid(f"invalid order_by direction {parts[1]!r}: ASC or DESC")
        keys.append((allowed[field], direction == "DESC"))
    keys.extend(k for k in default if k[0] not in {key for key, _ in keys})
    ordered = list(rows)
    for key, descending in reversed(keys):
        ordered.sort(key=_sort_key(key), reverse=descending)
    return ordered


def _sort_key(key: str) -> Callable[[dict[str, Any]], Any]:
    def get(row: dict[str, Any]) -> Any:
        value = row.get(key)
        return (value is None, value if value is not None else 0)

    return get


def page_token_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(data["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid(f"invalid page_token {token!r}") from None
    if offset < 0:
        raise invalid(f"invalid page_token {token!r}")
    return offset


def next_page_token(offset: int, page_size: int, total: int) -> str | None:
    end = offset + page_size
    if end >= total:
        return None
    return base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode()


def page(
    ordered: list[dict[str, Any]],
    *,
    offset: int,
    limit: int,
    key: str,
    render: Callable[[dict[str, Any]], Any],
) -> dict[str, Any]:
    """One page of a search's ordered rows, rendered under ``key``, with the token of the
    next page when there is one (MLflow leaves ``next_page_token`` out on the last page)."""
    out: dict[str, Any] = {key: [render(row) for row in ordered[offset : offset + limit]]}
    token = next_page_token(offset, limit, len(ordered))
    if token:
        out["next_page_token"] = token
    return out
