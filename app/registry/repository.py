"""All SQL of the registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Label,
    Row,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app.db.dialect import is_postgres
from app.registry.models import (
    EvaluationEvidence,
    Metric,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionSearchTerm,
)
from app.registry.search import Term


def model_by_name(session: Session, name: str) -> RegisteredModel | None:
    return session.scalars(select(RegisteredModel).where(RegisteredModel.name == name)).first()


def lock_model(session: Session, name: str) -> RegisteredModel | None:
    """Lock the model row until the transaction ends: every write to a model takes it first."""
    return session.scalars(_LOCK_MODEL, {"model_name": name}).first()


_LOCK_MODEL = (
    select(RegisteredModel)
    .where(RegisteredModel.name == bindparam("model_name"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


class NumberedModel(NamedTuple):
    """What a version creation needs of its model: the row's id, its name and the number
    just taken."""

    id: int
    name: str
    last_version: int


def number_next_version(session: Session, name: str) -> NumberedModel | None:
    """The model's id and name with its ``last_version`` raised by one, in one statement:
    the ``UPDATE ... RETURNING`` reads the model, numbers the new version and locks the
    row (so concurrent creates on any number of processes get consecutive numbers). Core,
    not an ORM-enabled update: nothing of the model is loaded that creation does not use."""
    row = session.connection().execute(_NUMBER_NEXT_VERSION, {"model_name": name}).first()
    return None if row is None else NumberedModel(*row)


_MODELS = RegisteredModel.__table__
_NUMBER_NEXT_VERSION = (
    update(_MODELS)  # type: ignore[arg-type]
    .where(_MODELS.c.name == bindparam("model_name"))
    .values(last_version=_MODELS.c.last_version + 1)
    .returning(_MODELS.c.id, _MODELS.c.name, _MODELS.c.last_version)
)


def add(session: Session, obj: Any) -> None:
    session.add(obj)


def add_all(session: Session, objs: Sequence[Any]) -> None:
    session.add_all(objs)


def page_models(
    session: Session,
    *,
    after_name: str | None,
    limit: int,
    owner: str | None,
    name_prefix: str | None,
    only_name: str | None,
) -> Sequence[RegisteredModel]:
    stmt = select(RegisteredModel)
    if after_name is not None:
        stmt = stmt.where(RegisteredModel.name > after_name)
    if owner is not None:
        stmt = stmt.where(RegisteredModel.owner == owner)
    if name_prefix:
        escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(RegisteredModel.name.like(escaped + "%", escape="\\"))
    if only_name is not None:
        stmt = stmt.where(RegisteredModel.name == only_name)
    return session.scalars(stmt.order_by(RegisteredModel.name).limit(limit)).all()


def production_versions(session: Session, model_ids: Sequence[int]) -> dict[int, int]:
    if not model_ids:
        return {}
    stmt = select(ModelVersion.model_id, ModelVersion.version).where(
        ModelVersion.model_id.in_(model_ids), ModelVersion.stage == Stage.PRODUCTION
    )
    return {mid: ver for mid, ver in session.execute(stmt)}


def _has_evidence() -> Label[bool]:
    """Whether the version of the row has evaluation evidence (most have none): selected
    with the version so that evidence is queried only for versions that have some.

    A scalar subquery with LIMIT 1 rather than EXISTS: PostgreSQL may run an EXISTS in
    the select list as one hashed scan of the whole evidence table, where this is always
    one probe of the (version_id, ...) unique index per returned row."""
    probe = (
        select(literal_column("1"))
        .where(EvaluationEvidence.version_id == ModelVersion.id)
        .limit(1)
        .scalar_subquery()
    )
    return probe.is_not(None).label("has_evidence")


def _fill_evidence(session: Session, versions: Sequence[tuple[ModelVersion, bool]]) -> None:
    """Load the ``evidence`` collection of each (version, has evidence): one statement for
    those that have some, none when no version has any."""
    wanted = [v.id for v, has in versions if has]
    found: dict[int, list[EvaluationEvidence]] = {i: [] for i in wanted}
    if wanted:
        stmt = (
            select(EvaluationEvidence)
            .where(EvaluationEvidence.version_id.in_(wanted))
            .order_by(EvaluationEvidence.id)
        )
        for ev in session.scalars(stmt):
            found[ev.version_id].append(ev)
    for v, _ in versions:
        set_committed_value(v, "evidence", found.get(v.id, []))


def version(
    session: Session, model_id: int, number: int, *, for_update: bool = False
) -> ModelVersion | None:
    stmt = (
        select(ModelVersion, _has_evidence())
        .where(ModelVersion.model_id == model_id, ModelVersion.version == number)
        .options(selectinload(ModelVersion.metrics))
    )
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = session.execute(stmt).first()
    if row is None:
        return None
    _fill_evidence(session, [(row[0], bool(row[1]))])
    return row[0]


def version_with_model(
    session: Session, model_name: str, number: int
) -> tuple[RegisteredModel, ModelVersion] | None:
    """A model and one of its versions, joined by the model's name in one statement (then
    the version's metrics, and its evidence if it has some); None when either is missing."""
    stmt = (
        select(RegisteredModel, ModelVersion, _has_evidence())
        .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
        .where(RegisteredModel.name == model_name, ModelVersion.version == number)
        .options(selectinload(ModelVersion.metrics))
    )
    row = session.execute(stmt).first()
    if row is None:
        return None
    _fill_evidence(session, [(row[1], bool(row[2]))])
    return row[0], row[1]


# What a version's read model (VersionRead) shows, as plain columns: list pages are
# built from these rows without ORM objects (no identity map, no state tracking).
VERSION_COLUMNS = (
    ModelVersion.id,
    ModelVersion.version,
    ModelVersion.stage,
    ModelVersion.description,
    ModelVersion.lineage,
    ModelVersion.lineage_fingerprint,
    ModelVersion.signature,
    ModelVersion.tags,
    ModelVersion.artifact_status,
    ModelVersion.artifact_corrupt_at,
    ModelVersion.artifact_sha256,
    ModelVersion.artifact_size,
    ModelVersion.artifact_media_type,
    ModelVersion.artifact_uploaded_at,
    ModelVersion.artifact_expected_sha256,
    ModelVersion.rolled_back,
    ModelVersion.archived_reason,
    ModelVersion.created_by,
    ModelVersion.created_at,
    ModelVersion.updated_at,
    ModelVersion.stage_changed_at,
)
METRIC_COLUMNS = (
    Metric.version_id,
    Metric.name,
    Metric.value,
    Metric.undefined_reason,
    Metric.dataset,
    Metric.slice,
    Metric.sample_count,
    Metric.source,
)
EVIDENCE_COLUMNS = (
    EvaluationEvidence.version_id,
    EvaluationEvidence.dataset,
    EvaluationEvidence.kind,
    EvaluationEvidence.size,
    EvaluationEvidence.digest,
)


# A result row of any shape (SQLAlchemy types rows by their columns' types).
AnyRow = Row[*tuple[Any, ...]]


class VersionRows(NamedTuple):
    """One version of a list page: its row (``VERSION_COLUMNS`` and ``has_evidence``),
    and its metrics and evidence rows (``METRIC_COLUMNS``, ``EVIDENCE_COLUMNS``) in the
    order they were recorded."""

    row: AnyRow
    metrics: list[AnyRow]
    evidence: list[AnyRow]


def _one_of(session: Session, column: Any, ids: list[int]) -> ColumnElement[bool]:
    """``column IN (ids)``; on PostgreSQL ``column = ANY(array)``: one parameter, so the
    statement's text is the same for every page (short enough for psycopg to cache its
    parsing, instead of rendering and parsing a hundred placeholders per page)."""
    if is_postgres(session):
        return column == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))  # type: ignore[no-any-return]
    return column.in_(ids)  # type: ignore[no-any-return]


def _with_details(session: Session, rows: Sequence[AnyRow]) -> list[VersionRows]:
    """The page's metrics (one statement) and evidence (one more if any version of the
    page has some; rows carry ``has_evidence``)."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    metrics: dict[int, list[AnyRow]] = {i: [] for i in ids}
    stmt = (
        select(*METRIC_COLUMNS).where(_one_of(session, Metric.version_id, ids)).order_by(Metric.id)
    )
    for m in session.execute(stmt):
        metrics[m.version_id].append(m)
    evidence: dict[int, list[AnyRow]] = {i: [] for i in ids}
    with_evidence = [row.id for row in rows if row.has_evidence]
    if with_evidence:
        ev_stmt = (
            select(*EVIDENCE_COLUMNS)
            .where(_one_of(session, EvaluationEvidence.version_id, with_evidence))
            .order_by(EvaluationEvidence.id)
        )
        for e in session.execute(ev_stmt):
            evidence[e.version_id].append(e)
    return [VersionRows(row, metrics[row.id], evidence[row.id]) for row in rows]


def page_versions(
    session: Session,
    *,
    model_id: int,
    stage: str | None,
    descending: bool,
    after_version: int | None,
    limit: int,
    fingerprint: str | None = None,
    terms: Sequence[Term] = (),
) -> list[VersionRows]:
    stmt = select(*VERSION_COLUMNS, _has_evidence()).where(ModelVersion.model_id == model_id)
    if stage is not None:
        stmt = stmt.where(ModelVersion.stage == stage)
    if fingerprint is not None:
        stmt = stmt.where(ModelVersion.lineage_fingerprint == fingerprint)
    for term in terms:
        stmt = stmt.where(_has_term(model_id, term))
    if after_version is not None:
        stmt = stmt.where(
            ModelVersion.version < after_version
            if descending
            else ModelVersion.version > after_version
        )
    order = ModelVersion.version.desc() if descending else ModelVersion.version.asc()
    return _with_details(session, session.execute(stmt.order_by(order).limit(limit)).all())


def page_versions_by_metric(
    session: Session,
    *,
    model_id: int,
    stage: str | None,
    metric: str,
    dataset: str,
    descending: bool,
    after: tuple[float, int] | None,
    limit: int,
    fingerprint: str | None = None,
    terms: Sequence[Term] = (),
) -> list[tuple[VersionRows, float]]:
    """Versions ordered by one metric's value (versions without a defined value are left out)."""
    stmt = (
        select(*VERSION_COLUMNS, _has_evidence(), Metric.value.label("order_value"))
        .join(Metric, Metric.version_id == ModelVersion.id)
        .where(
            Metric.model_id == model_id,
            Metric.name == metric,
            Metric.dataset == dataset,
            # A literal, not a parameter: it must match the partial index's predicate
            # even in a generic plan of a prepared statement.
            Metric.slice == literal_column("''"),
            Metric.value.is_not(None),
        )
    )
    if stage is not None:
        # metrics.stage is the version's stage (kept equal on every change): filtering
        # on it makes the page a range of ix_metrics_model_id_name_dataset_stage_value.
        stmt = stmt.where(Metric.stage == stage)
    if fingerprint is not None:
        stmt = stmt.where(ModelVersion.lineage_fingerprint == fingerprint)
    for term in terms:
        stmt = stmt.where(_has_term(model_id, term))
    if after is not None:
        value, number = after
        # The same keyset as "(value, version) after the cursor", written so that the
        # bound on value alone is a range condition of the metrics index: with the plain
        # OR, PostgreSQL walks the index from the top and filters, which takes seconds
        # half-way down a million versions (EXPLAIN in docs/performance.md).
        if descending:
            stmt = stmt.where(
                Metric.value <= value,
                (Metric.value < value) | (ModelVersion.version < number),
            )
        else:
            stmt = stmt.where(
                Metric.value >= value,
                (Metric.value > value) | (ModelVersion.version > number),
            )
    if descending:
        stmt = stmt.order_by(Metric.value.desc(), ModelVersion.version.desc())
    else:
        stmt = stmt.order_by(Metric.value.asc(), ModelVersion.version.asc())
    rows = session.execute(stmt.limit(limit)).all()
    return [
        (page_row, float(row.order_value or 0.0))
        for page_row, row in zip(_with_details(session, rows), rows, strict=True)
    ]


def existing_metrics(session: Session, version_id: int) -> dict[tuple[str, str, str], Metric]:
    rows = session.scalars(select(Metric).where(Metric.version_id == version_id))
    return {(m.name, m.dataset, m.slice): m for m in rows}


def count_versions(session: Session, model_id: int) -> int:
    stmt = select(func.count()).select_from(ModelVersion).where(ModelVersion.model_id == model_id)
    return int(session.execute(stmt).scalar_one())


def artifact_keys_page(session: Session, *, after: str | None, limit: int) -> list[str]:
    """Distinct artifact keys recorded on versions, in key order, after ``after``."""
    stmt = select(ModelVersion.artifact_key).where(ModelVersion.artifact_key.is_not(None))
    if after is not None:
        stmt = stmt.where(ModelVersion.artifact_key > after)
    stmt = stmt.group_by(ModelVersion.artifact_key).order_by(ModelVersion.artifact_key).limit(limit)
    return [key for key in session.scalars(stmt) if key is not None]


def count_artifact_keys(session: Session) -> int:
    stmt = select(func.count(func.distinct(ModelVersion.artifact_key))).where(
        ModelVersion.artifact_key.is_not(None)
    )
    return int(session.execute(stmt).scalar_one())


def versions_with_keys(
    session: Session, keys: Sequence[str]
) -> list[tuple[ModelVersion, RegisteredModel]]:
    """The versions recording any of ``keys``, with their models, in lock order (model
    name, then version)."""
    if not keys:
        return []
    stmt = (
        select(ModelVersion, RegisteredModel)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(ModelVersion.artifact_key.in_(list(keys)))
        .order_by(RegisteredModel.name, ModelVersion.version)
    )
    return [(row[0], row[1]) for row in session.execute(stmt)]


def referenced_artifact_keys(session: Session) -> set[str]:
    stmt = (
        select(ModelVersion.artifact_key).where(ModelVersion.artifact_key.is_not(None)).distinct()
    )
    return {key for key in session.scalars(stmt) if key is not None}


def metric_recorded(session: Session, *, model_id: int, metric: str) -> bool:
    """Whether any version of the model has recorded ``metric`` (on any dataset)."""
    stmt = select(Metric.id).where(Metric.model_id == model_id, Metric.name == metric).limit(1)
    return session.execute(stmt).first() is not None


def _has_term(model_id: int, term: Term) -> Any:
    """``version IN (versions with the term)``: a range of the (model, key, value digest,
    version) index per term."""
    found = select(VersionSearchTerm.version).where(
        VersionSearchTerm.model_id == model_id, VersionSearchTerm.key == term.key
    )
    if term.value_sha256 is not None:
        found = found.where(VersionSearchTerm.value_sha256 == term.value_sha256)
    return ModelVersion.version.in_(found)


def replace_search_terms(
    session: Session, version: ModelVersion, terms: Sequence[tuple[str, str]], *, prefix: str
) -> None:
    """Replace the version's terms whose key starts with ``prefix`` by ``terms``."""
    session.connection().execute(
        delete(VersionSearchTerm).where(
            VersionSearchTerm.version_id == version.id, VersionSearchTerm.key.startswith(prefix)
        )
    )
    add_search_terms(session, version, [t for t in terms if t[0].startswith(prefix)])


def insert_evaluation_rows(
    session: Session, metrics: Sequence[Metric], evidence: Sequence[EvaluationEvidence]
) -> None:
    """Insert a new version's metric and evidence rows now, with Core (one statement per
    table): they are not read back in the transaction that writes them, and the ORM's
    flush of them was a good part of a version creation's CPU. Every column but the id
    must be set on the objects (a column's default is not applied here)."""
    for (statement, keys), rows in ((_INSERT_METRICS, metrics), (_INSERT_EVIDENCE, evidence)):
        if rows:
            session.connection().execute(
                statement, [{key: getattr(row, key) for key in keys} for row in rows]
            )


def _insert_all_but_id(table: Any) -> tuple[Any, list[str]]:
    return insert(table), [c.key for c in table.columns if not c.primary_key]


_INSERT_METRICS = _insert_all_but_id(Metric.__table__)
_INSERT_EVIDENCE = _insert_all_but_id(EvaluationEvidence.__table__)


def add_search_terms(
    session: Session, version: ModelVersion, terms: Sequence[tuple[str, str]]
) -> None:
    if not terms:
        return
    session.connection().execute(
        _INSERT_TERMS,
        [
            {"model_id": version.model_id, "version_id": version.id, "version": version.version,
             "key": key, "value_sha256": value}
            for key, value in terms
        ],
    )  # fmt: skip


_INSERT_TERMS = insert(VersionSearchTerm.__table__)  # type: ignore[arg-type]
