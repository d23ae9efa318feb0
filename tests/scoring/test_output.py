from pathlib import Path

import pytest

from scoring.output import CsvResultWriter, ParquetResultWriter, ScoredImage, open_writer

CLASSES = ("cat", "dog")


def _item(i: int) -> ScoredImage:
    return ScoredImage(f"p{i}.jpg", f"{i:064x}", "cat", 0.9, (0.9, 0.1), "3")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_written_are_read_back_as_done(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"scores{suffix}"
    writer = open_writer(out, CLASSES)
    writer.append([_item(1), _item(2)])
    writer.append([_item(3)])
    writer.close()
    reopened = open_writer(out, CLASSES)
    assert reopened.done() == {(f"p{i}.jpg", f"{i:064x}") for i in (1, 2, 3)}


def test_csv_torn_last_line_is_cut_on_reopen(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    writer = CsvResultWriter(out, CLASSES)
    writer.append([_item(1), _item(2)])
    writer.close()
    with out.open("ab") as fh:
        fh.write(b"p3.jpg,00ab,ca")  # a kill in the middle of a write
    reopened = CsvResultWriter(out, CLASSES)
    reopened.append([_item(3)])
    reopened.close()
    lines = out.read_text().splitlines()
    assert lines[0].startswith("path,sha256,predicted_class,confidence,prob_cat,prob_dog")
    assert [line.split(",")[0] for line in lines[1:]] == ["p1.jpg", "p2.jpg", "p3.jpg"]


def test_csv_written_for_other_classes_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    CsvResultWriter(out, CLASSES).close()
    with pytest.raises(ValueError, match="another model"):
        CsvResultWriter(out, ("a", "b", "c"))


def test_parquet_leftover_temp_parts_are_ignored(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    writer = ParquetResultWriter(out, CLASSES)
    writer.append([_item(1)])
    (out / "part-000002.tmp").write_bytes(b"half a part")
    reopened = ParquetResultWriter(out, CLASSES)
    assert reopened.done() == {("p1.jpg", f"{1:064x}")}
    assert not list(out.glob("*.tmp"))


def test_output_in_missing_folder_and_bad_suffix_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        open_writer(tmp_path / "missing" / "s.csv", CLASSES)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        open_writer(tmp_path / "s.json", CLASSES)
