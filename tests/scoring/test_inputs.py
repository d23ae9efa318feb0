from pathlib import Path

import pytest

from scoring.inputs import ALL, Shard, list_inputs


def _tree(root: Path, n: int) -> list[Path]:
    files = []
    for i in range(n):
        path = root / f"d{i % 3}" / f"img{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        files.append(path)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "skip.jpg").write_bytes(b"x")
    return files


def test_directory_listing_is_recursive_and_skips_hidden(tmp_path: Path) -> None:
    files = _tree(tmp_path, 10)
    assert sorted(list_inputs(tmp_path)) == sorted(files)


@pytest.mark.parametrize("count", [1, 2, 5, 8])
def test_shards_cover_every_input_exactly_once(tmp_path: Path, count: int) -> None:
    files = _tree(tmp_path, 200)
    seen: list[Path] = []
    for index in range(count):
        seen += list_inputs(tmp_path, Shard(index, count))
    assert sorted(seen) == sorted(files)
    assert len(seen) == len(set(seen))


def test_shards_are_balanced_and_stable_when_files_are_added(tmp_path: Path) -> None:
    _tree(tmp_path, 400)
    before = {i: set(list_inputs(tmp_path, Shard(i, 4))) for i in range(4)}
    assert all(60 < len(s) < 140 for s in before.values())
    extra = tmp_path / "new" / "late.jpg"
    extra.parent.mkdir()
    extra.write_bytes(b"x")
    after = {i: set(list_inputs(tmp_path, Shard(i, 4))) for i in range(4)}
    for i in range(4):
        assert before[i] <= after[i]


def test_manifest_input_resolves_relative_paths(tmp_path: Path) -> None:
    files = _tree(tmp_path, 4)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"{f.relative_to(tmp_path)},cat\n" for f in files))
    assert list_inputs(manifest, ALL) == files


def test_manifest_without_path_column_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("name,label\na.jpg,cat\n")
    with pytest.raises(ValueError, match="'path' column"):
        list_inputs(manifest)


@pytest.mark.parametrize("text", ["3", "4/4", "-1/2", "a/b", "1/0"])
def test_bad_shard_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard.parse(text)


def test_missing_input_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input not found"):
        list_inputs(tmp_path / "nope")
