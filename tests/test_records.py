"""Record base types: JSON round trip, schema checks, compare with matching."""

from typing import ClassVar

import numpy as np
import pytest

from nanodomains.errors import FileFormatError, InputError
from nanodomains.files import atomic_path, read_json, to_jsonable, write_json_atomic
from nanodomains.records import Item, Measured, Record, compare, load_record, measured
from nanodomains.records.base import FloatArray
from nanodomains.seeds import check_seed, rng, spawn


class Line(Item):
    MATCH_ON: ClassVar[str] = "center_nm"
    center_nm: Measured
    kind: str


class Spectrum(Record):
    SCHEMA: ClassVar[str] = "nanodomains.test_spectrum/1"
    lines: tuple[Line, ...] = ()
    counts: FloatArray = np.zeros(0)
    tau_ns: Measured = Measured(value=None)


def _spec(centres, se=0.01, origin="analysis"):
    return Spectrum(lines=tuple(Line(center_nm=measured(c, se), kind="x") for c in centres),
                    counts=np.array([1.0, np.nan, 3.0]), tau_ns=measured(0.5, 0.02), origin=origin)


def test_round_trip_keeps_arrays_nan_and_schema(tmp_path):
    s = _spec([650.0, 652.0])
    path = tmp_path / "s.json"
    s.to_json(path)
    back = Spectrum.from_json(path)
    assert back == s
    assert np.isnan(back.counts[1])
    assert read_json(path)["schema"] == "nanodomains.test_spectrum/1"
    assert isinstance(load_record(path), Spectrum)


def test_wrong_schema_and_bad_json_are_clear_errors(tmp_path):
    p = tmp_path / "x.json"
    write_json_atomic({"schema": "nanodomains.other/1"}, p)
    with pytest.raises(FileFormatError, match="expected 'nanodomains.test_spectrum/1'"):
        Spectrum.from_json(p)
    p.write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        Spectrum.from_json(p)
    with pytest.raises(FileFormatError, match="no such file"):
        Spectrum.from_json(tmp_path / "missing.json")
    with pytest.raises(FileFormatError, match="unknown record schema"):
        load_record('{"schema": "nanodomains.nothing/9"}')


def test_records_are_frozen_and_validate():
    s = _spec([650.0])
    with pytest.raises(Exception):
        s.tau_ns = measured(1.0)
    with pytest.raises(Exception):
        Spectrum(unknown_field=1)
    with pytest.raises(Exception):
        measured(1.0, -0.1)
    assert s.replace(source="f.sif").source == "f.sif"
    assert measured(float("nan")).value is None


def test_compare_pairs_lines_by_centre_and_reports_missed_and_extra():
    truth = _spec([650.0, 655.0, 660.0], se=0.0, origin="truth")
    found = _spec([655.02, 649.99, 670.0])
    cmp = compare(truth, found, tolerances={"lines.center_nm": 0.05, "lines.match": 1.0,
                                            "tau_ns": "3sigma"})
    paths = {r.path: r for r in cmp.rows}
    assert paths["lines[0].center_nm"].ok and abs(paths["lines[0].center_nm"].difference + 0.01) < 1e-9
    assert paths["lines[1].center_nm"].ok
    assert paths["lines[2]"].status == "missed" and not cmp.ok
    assert any(r.status == "extra" for r in cmp.rows)
    assert paths["tau_ns"].ok is True
    # a shifted line beyond tolerance fails
    bad = compare(truth, _spec([650.2, 655.0, 660.0]), tolerances={"lines.center_nm": 0.05})
    assert bad.row("lines[0].center_nm").ok is False
    assert len(bad.table()) == len(bad.rows)


def test_compare_refuses_different_types():
    class Other(Record):
        SCHEMA: ClassVar[str] = "nanodomains.test_other/1"

    with pytest.raises(InputError, match="one type"):
        compare(_spec([1.0]), Other())


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert p.read_text() == "old"
    assert list(tmp_path.iterdir()) == [p]


def test_seeds_are_checked_and_streams_independent():
    with pytest.raises(InputError, match="non-negative"):
        check_seed(-1)
    with pytest.raises(InputError):
        rng(None)
    a = spawn(5, ["x", "y"])
    assert a["x"].random() != a["y"].random()
    assert to_jsonable({"k": np.int64(3)}) == {"k": 3}


class Fit(Record):
    SCHEMA: ClassVar[str] = "nanodomains.test_fit/1"
    tau_ns: tuple[Measured, ...] = ()


def test_compare_tuples_of_measured_element_by_element():
    truth = Fit(tau_ns=(measured(0.5, 0), measured(2.0, 0)), origin="truth")
    cmp = compare(truth, Fit(tau_ns=(measured(0.51, 0.01), measured(2.5, 0.1))), tolerances={"tau_ns": 0.05})
    assert cmp.row("tau_ns[0]").ok is True and cmp.row("tau_ns[1]").ok is False
    short = compare(truth, Fit(tau_ns=(measured(0.5, 0.01),)), tolerances={"tau_ns": 0.05})
    assert short.row("tau_ns[1]").ok is False
