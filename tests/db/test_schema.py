"""The schema check every writing command makes (recovery.db.schema), against the migration
scripts `db upgrade` runs (recovery.db.migrate)."""

from pathlib import Path

import pytest
from sqlalchemy import text

from recovery.db import migrate, open_database, schema
from recovery.db.schema import HEADS, REVISION, VERSION_TABLE, SchemaMissing
from tests.support.databases import migrated_database


def test_the_heads_the_check_knows_are_the_heads_of_the_migration_scripts():
    scripts = migrate.scripts()
    assert {branch: scripts.get_revision(f"{branch}@head").revision for branch in schema.BRANCHES} == HEADS


def test_every_revision_is_numbered_one_after_the_revision_it_follows_on_its_branch():
    for script in migrate.scripts().walk_revisions():
        branch, number = REVISION.match(script.revision).groups()
        if script.down_revision is None:
            assert number == "0001" and script.branch_labels == {branch}
        else:
            assert REVISION.match(script.down_revision).groups() == (branch, f"{int(number) - 1:04d}")


def _set_versions(path: Path, *revisions: str) -> None:
    db = open_database(f"sqlite:///{path}")
    with db.transaction("set the schema version") as conn:
        conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        for revision in revisions:
            conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"), {"v": revision})
    db.close()


def _require(path: Path, branches: tuple[str, ...] = schema.BRANCHES) -> None:
    db = open_database(f"sqlite:///{path}", read_only=True)
    try:
        schema.require(db, branches)
    finally:
        db.close()


def test_an_upgraded_database_passes_and_one_at_a_newer_revision_is_refused(tmp_path):
    path = tmp_path / "db.sqlite"
    migrated_database(f"sqlite:///{path}").close()
    _require(path)
    newer = f"cell_{int(REVISION.match(HEADS['cell']).group(2)) + 1:04d}"
    _set_versions(path, newer, HEADS["journal"])
    with pytest.raises(SchemaMissing, match=f"newer compute-recover schema \\({newer}\\).*upgrade compute-recover"):
        _require(path)
    _set_versions(path, "cell_9999", "other_0001")
    with pytest.raises(SchemaMissing, match="cell_9999, other_0001"):
        _require(path)


def test_a_database_behind_the_heads_is_told_to_run_db_upgrade(tmp_path):
    path = tmp_path / "db.sqlite"
    migrated_database(f"sqlite:///{path}").close()
    _set_versions(path, HEADS["journal"])
    _require(path, schema.JOURNAL_BRANCHES)
    with pytest.raises(SchemaMissing, match=f"older compute-recover schema: run `compute-recover db upgrade --db sqlite:///{path}`"):
        _require(path)
