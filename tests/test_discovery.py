"""discover(): the files on disk → sorted, validated SqlFiles, or every problem at once (no database)."""

from __future__ import annotations

import pytest

from dbmigrations.discovery import checksum, discover
from dbmigrations.exceptions import InvalidFiles
from tests.conftest import migration, write_files


def problems(directory, **options) -> list[str]:
    """The problems ``discover`` reports, as ``name[:line[:column]]: message`` without the folder."""
    with pytest.raises(InvalidFiles) as error:
        discover(directory, **options)
    assert error.value.exit_code == 2
    return sorted(str(p).removeprefix(f"{directory}/") for p in error.value.problems)


def test_sorted_by_number_not_by_text_with_the_version_as_written(migrations_dir):
    write_files(migrations_dir, {f"{v}_m.sql": migration(f"{v}_m", "SELECT 1;") for v in ("1000", "100", "010", "002")})
    files = discover(migrations_dir)
    assert [(f.version, f.number, f.name) for f in files] == [
        ("002", 2, "002_m"),
        ("010", 10, "010_m"),
        ("100", 100, "100_m"),
        ("1000", 1000, "1000_m"),
    ]


def test_down_file_description_and_what_is_ignored(migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_add_users.sql": migration("001_add_users", "CREATE TABLE users (id int);", description="Adds users"),
            "001_add_users.down.sql": "DROP TABLE users;\n",
            "002_plain.sql": "SELECT 1;\n",
            "README.md": "not sql",
            ".gitkeep": "",
            "notes.txt": "SELEC broken",
        },
    )
    first, second = discover(migrations_dir)
    assert first.path == migrations_dir / "001_add_users.sql" and first.slug == "add_users"
    assert first.down.path == migrations_dir / "001_add_users.down.sql"
    assert first.description == "Adds users"
    assert second.down is None and second.description == "002_plain"  # no header: the name


def test_checksum_ignores_bom_and_crlf_but_not_content(migrations_dir, tmp_path):
    text = migration("001_a", "CREATE TABLE a (id int);")
    write_files(migrations_dir, {"001_a.sql": ("\ufeff" + text.replace("\n", "\r\n")).encode()})
    [windows] = discover(migrations_dir)
    assert windows.checksum == checksum(text) and len(windows.checksum) == 64
    write_files(migrations_dir, {"001_a.sql": text + "-- edited\n"})
    assert discover(migrations_dir)[0].checksum != checksum(text)


def test_every_problem_at_once_with_positions(migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_ok.sql": "SELECT 1;\n",
            "2_short.sql": "SELECT 1;\n",
            "003_CamelCase.sql": "SELECT 1;\n",
            "004_typo.sql": "SELECT 1;\nSELEC 2;\n",
            "005_latin1.sql": b"SELECT 1;\n-- caf\xe9\n",
            "006_empty.sql": "-- nothing yet\nBEGIN;\nCOMMIT;\n",
            "007_gone.down.sql": "SELECT 1;\n",
            "008_a.sql": "SELECT 1;\n",
            "0008_b.sql": "SELECT 2;\n",
            "009_copy.sql": "COPY t FROM STDIN;\n",
            "010_stray.sql": "SELECT 1;\nCOMMIT;\n",
        },
    )
    found = problems(migrations_dir)
    assert len(found) == 10, found
    expected = [
        "0008_b.sql: duplicate version 8",
        "003_CamelCase.sql: invalid file name",
        '004_typo.sql:2:1: syntax error at or near "SELEC"',
        "005_latin1.sql:2: not valid UTF-8 (byte 0xe9)",
        "006_empty.sql: empty file",
        "007_gone.down.sql: down file without its up file (007_gone.sql)",
        "008_a.sql: duplicate version 8",
        "009_copy.sql:1:1: COPY … FROM STDIN needs psql",
        "010_stray.sql:2:1: transaction control (COMMIT)",
        "2_short.sql: invalid file name",
    ]
    for problem, start in zip(found, expected):
        assert problem.startswith(start), (problem, start)


def test_a_duplicate_versions_down_file_is_not_also_an_orphan(migrations_dir):
    write_files(migrations_dir, {"001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;", "001_a.down.sql": "SELECT 3;"})
    found = problems(migrations_dir)
    assert [p.split(":")[0] for p in found] == ["0001_b.sql", "001_a.sql"]
    assert not any("without its up file" in p for p in found)


def test_seeds_may_not_have_down_files(tmp_path):
    seeds = write_files(tmp_path / "development", {"001_a.sql": "SELECT 1;", "001_a.down.sql": "SELECT 2;"})
    assert problems(seeds, allow_down=False) == ["001_a.down.sql: down files belong beside migrations, not here"]


def test_without_parsing_bad_sql_waits_but_a_refusal_still_lists_it(migrations_dir):
    write_files(migrations_dir, {"001_a.sql": "SELEC 1;\n"})
    [lazy] = discover(migrations_dir, parse=False)  # parsed later, only if it is going to run
    assert lazy.name == "001_a"
    write_files(migrations_dir, {"2_bad.sql": "SELECT 1;\n"})
    found = problems(migrations_dir, parse=False)
    assert [p.split(":")[0] for p in found] == ["001_a.sql", "2_bad.sql"]
    assert "syntax error" in found[0]


def test_folders_and_dangling_links_named_like_sql_files_are_problems(migrations_dir):
    write_files(migrations_dir, {"001_a.sql": "SELECT 1;\n"})
    (migrations_dir / "002_b.sql").mkdir()
    (migrations_dir / "003_c.sql").symlink_to(migrations_dir / "nowhere.sql")
    assert problems(migrations_dir) == [
        "002_b.sql: a folder, not a SQL file",
        "003_c.sql: cannot read the file: No such file or directory",
    ]


def test_a_file_where_the_folder_should_be(tmp_path):
    not_a_folder = tmp_path / "migrations.sql"
    not_a_folder.write_text("SELECT 1;\n")
    with pytest.raises(InvalidFiles, match="cannot list the folder: Not a directory"):
        discover(not_a_folder)
