"""Schema migrations: the models equal the migrated schema, and old databases upgrade in place."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from service.core.db import make_engine
from service.core.migrations import (
    FOUNDATION,
    compare_with,
    current_revision,
    downgrade_database,
    heads,
    service_metadata,
    upgrade_database,
)
from service.core.orm import Annotation, Image, ModelVersion, Round, RoundItem

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_chain_has_one_head() -> None:
    assert len(heads()) == 1, f"merge the heads {heads()} with `alembic merge`"


def test_models_equal_the_migrated_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) == heads()[0]
    with engine.connect() as connection:
        assert compare_with(connection, service_metadata()) == []
    engine.dispose()


def test_upgrade_from_the_foundation_keeps_its_data(database_url: str) -> None:
    engine = make_engine(database_url, migrate=False)
    upgrade_database(engine, FOUNDATION)
    _fill_foundation(engine)
    upgrade_database(engine)
    assert current_revision(engine) == heads()[0]
    _assert_foundation_data(engine)
    engine.dispose()


def test_a_database_made_before_migrations_is_stamped_then_upgraded(database_url: str) -> None:
    engine = make_engine(database_url, migrate=False)
    upgrade_database(engine, FOUNDATION)
    with engine.begin() as connection:  # what the old create_all left: tables, no version
        connection.execute(text("DROP TABLE alembic_version"))
    _fill_foundation(engine)
    assert current_revision(engine) is None
    engine.dispose()
    engine = make_engine(database_url)
    assert current_revision(engine) == heads()[0]
    _assert_foundation_data(engine)
    engine.dispose()


def test_every_revision_downgrades_and_upgrades_again(database_url: str) -> None:
    engine = make_engine(database_url)
    downgrade_database(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade_database(engine)
    with engine.connect() as connection:
        assert compare_with(connection, service_metadata()) == []
    engine.dispose()


def test_sqlite_connections_get_wal_foreign_keys_and_the_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'deep' / 'db.sqlite'}", busy_timeout_s=2.5)
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert (pragma("journal_mode"), pragma("foreign_keys"), pragma("busy_timeout")) == (
            "wal",
            1,
            2500,
        )
    engine.dispose()


def _fill_foundation(engine: Engine) -> None:
    """Rows in the foundation's tables, written with plain SQL as that schema had them."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO images (id, path, sha256, width, height, source, registered_at,"
                " label, label_source, labeled_at) VALUES (1, '/pool/a.png', :sha, 28, 28,"
                " 'folder', :now, 'Bag', 'seed', :now), (2, '/pool/b.png', :sha, 28, 28,"
                " 'folder', :now, NULL, NULL, NULL)"
            ),
            {"sha": "0" * 64, "now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO model_versions (id, backbone_id, checkpoint_path, n_train,"
                " class_names, metrics, guide_fingerprint, labels_digest, created_at)"
                " VALUES ('m1', 'b', 'c.pt', 1, '[\"Bag\"]', '{}', 'f', 'd', :now)"
            ),
            {"now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO rounds (id, created_at, status, strategy, k, model_version,"
                " pool_size, embedded, embedding_rate, project_id)"
                " VALUES (1, :now, 'pushed', 'margin', 1, 'm1', 1, 1, 1.0, 7)"
            ),
            {"now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO round_items (id, round_id, image_id, rank, score, predicted_label,"
                " predicted_probability, model_version, task_id)"
                " VALUES (1, 1, 2, 0, 0.5, 'Bag', 0.5, 'm1', 11)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO annotations (id, studio_annotation_id, task_id, image_id, label,"
                " status, synced_at) VALUES (1, 21, 11, 2, 'Bag', 'accepted', :now)"
            ),
            {"now": NOW},
        )


def _assert_foundation_data(engine: Engine) -> None:
    with Session(engine) as session:
        images = session.scalars(select(Image).order_by(Image.id)).all()
        assert [(i.path, i.label) for i in images] == [
            ("/pool/a.png", "Bag"),
            ("/pool/b.png", None),
        ]
        assert session.get(ModelVersion, "m1").class_names == ["Bag"]  # type: ignore[union-attr]
        assert session.get(Round, 1).project_id == 7  # type: ignore[union-attr]
        assert session.get(RoundItem, 1).task_id == 11  # type: ignore[union-attr]
        annotation = session.scalars(select(Annotation)).one()
        assert (annotation.studio_annotation_id, annotation.image_id) == (21, 2)


def test_two_services_starting_at_once_both_find_the_newest_schema(database_url: str) -> None:
    def start(_: int) -> str | None:
        engine = make_engine(database_url)
        try:
            return current_revision(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(start, range(2))) == [heads()[0]] * 2
