"""Photon streams (nanodomains.timetags) and decay histogram readers: real PTU files, npz round trip, bad input."""

from __future__ import annotations

import struct
from pathlib import Path

from conftest import REALDATA, require_realdata

import numpy as np
import ptufile
import pytest

from nanodomains.errors import FileFormatError, InputError
from nanodomains.spectroscopy.photons_io import read_decay, read_two_column_text
from nanodomains.timetags import (
    PhotonStream,
    iter_ptu_chunks,
    photon_file_summary,
    read_photons,
    read_photons_npz,
    read_ptu,
    write_photons_npz,
)

REAL = REALDATA
HH_T2 = REAL / "photons" / "hydraharp_v20_t2.ptu"
PH_T2 = REAL / "photons" / "picoharp_v30_t2.ptu"
HH_T3 = REAL / "photons" / "hydraharp_v20_t3.ptu"


@pytest.fixture(scope="module")
def streams():
    require_realdata(HH_T2, PH_T2, HH_T3)
    return {p.stem: read_ptu(p) for p in (HH_T2, PH_T2, HH_T3)}


def test_hydraharp_t2_multi_overflow_duration(streams):
    s = streams["hydraharp_v20_t2"]
    # the file holds 5.00 s; counting each multi-overflow record once gives 4.35 s
    assert s.duration_s == pytest.approx(5.00, abs=0.005)
    assert s.times_ps[-1] / 1e12 == pytest.approx(5.00, abs=0.005)
    assert s.n_photons == 305565
    assert s.channel_counts() == {0: 305565}
    assert s.resolution_ps == 1.0 and s.sync_period_ps is None and s.microtimes_ps is None


def test_picoharp_t2(streams):
    s = streams["picoharp_v30_t2"]
    assert s.duration_s == pytest.approx(7.65, abs=0.01)
    assert s.channel_counts() == {0: 531477, 1: 388700}
    assert s.resolution_ps == pytest.approx(4.0)
    assert np.all(s.times_ps % 4 == 0)  # 4 ps time-tag unit


def test_hydraharp_t3_microtimes(streams):
    s = streams["hydraharp_v20_t3"]
    assert s.is_t3 and s.microtimes_ps is not None
    assert s.n_photons == 77883
    assert s.sync_period_ps == pytest.approx(200_000, rel=1e-4)  # 5 MHz sync
    assert s.resolution_ps == pytest.approx(64.0, rel=1e-6)
    assert s.microtimes_ps.min() >= 0 and s.microtimes_ps.max() < s.sync_period_ps
    assert s.duration_s == pytest.approx(10.0, abs=0.01)
    # macro time = n_sync * T_sync + micro time
    n_sync = np.rint((s.times_ps - s.microtimes_ps) / s.sync_period_ps)
    assert np.allclose(n_sync * s.sync_period_ps + s.microtimes_ps, s.times_ps, atol=1.0)


@pytest.mark.parametrize("path", [HH_T2, PH_T2, HH_T3], ids=lambda p: p.stem)
def test_times_sorted_and_match_ptufile(path, streams):
    s = streams[path.stem]
    assert np.all(np.diff(s.times_ps) >= 0)
    with ptufile.PtuFile(path) as ptu:
        rec = ptu.decode_records()
    photon = rec["channel"] >= 0
    assert s.n_photons == int(photon.sum())
    if not s.is_t3:
        ref = rec["time"][photon].astype(np.int64) * int(round(s.resolution_ps))
        assert np.array_equal(np.sort(ref), s.times_ps)


@pytest.mark.parametrize("path", [HH_T2, PH_T2, HH_T3], ids=lambda p: p.stem)
def test_chunked_equals_whole(path, streams):
    whole = streams[path.stem]
    chunks = list(iter_ptu_chunks(path, chunk_records=5003))
    assert len(chunks) > 10
    t = np.concatenate([c.times_ps for c in chunks])
    ch = np.concatenate([c.channels for c in chunks])
    assert np.array_equal(t, whole.times_ps)
    assert np.array_equal(ch, whole.channels)
    if whole.is_t3:
        assert np.array_equal(np.concatenate([c.microtimes_ps for c in chunks]), whole.microtimes_ps)
    assert chunks[-1].duration_s == pytest.approx(whole.duration_s)
    # coverage grows monotonically chunk by chunk
    assert all(a.duration_s <= b.duration_s for a, b in zip(chunks, chunks[1:]))


@pytest.mark.realdata
def test_truncated_ptu_is_reported(tmp_path):
    data = PH_T2.read_bytes()
    cut = tmp_path / "cut.ptu"
    cut.write_bytes(data[: len(data) * 6 // 10])
    # the records present are read; the missing ones are a warning with both numbers
    short = read_ptu(cut)
    n_present = (cut.stat().st_size - ptufile.PtuFile(PH_T2).record_offset) // 4
    assert any("records missing" in w and str(n_present) in w for w in short.warnings)
    assert 0 < short.n_photons < 920177
    head = tmp_path / "head.ptu"
    head.write_bytes(data[:200])
    with pytest.raises(FileFormatError, match="head.ptu"):
        read_ptu(head)
    junk = tmp_path / "junk.ptu"
    junk.write_bytes(b"not a ptu file at all" * 10)
    with pytest.raises(FileFormatError, match="junk.ptu"):
        read_ptu(junk)
    with pytest.raises(FileFormatError, match="missing.ptu"):
        read_ptu(tmp_path / "missing.ptu")


def test_npz_round_trip_t2_and_t3(tmp_path, streams):
    for name in ("picoharp_v30_t2", "hydraharp_v20_t3"):
        s = streams[name]
        p = write_photons_npz(s, tmp_path / f"{name}.npz")
        r = read_photons(p)
        assert np.array_equal(r.times_ps, s.times_ps) and r.times_ps.dtype == np.int64
        assert np.array_equal(r.channels, s.channels) and r.channels.dtype == np.uint8
        if s.is_t3:
            assert np.array_equal(r.microtimes_ps, s.microtimes_ps)
        else:
            assert r.microtimes_ps is None
        assert r.sync_period_ps == s.sync_period_ps
        assert r.duration_s == s.duration_s and r.resolution_ps == s.resolution_ps
        assert r.source == s.source


def test_npz_bad_content(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, times_ps=np.arange(5, dtype=np.int64), channels=np.zeros(5, np.uint8), resolution_ps=1.0)
    with pytest.raises(FileFormatError, match="duration_s"):
        read_photons_npz(p)
    np.savez(
        p, times_ps=np.arange(5.0), channels=np.zeros(5, np.uint8), resolution_ps=1.0, duration_s=1.0
    )
    with pytest.raises(FileFormatError, match="int64"):
        read_photons_npz(p)
    np.savez(
        p,
        times_ps=np.array([3, 2, 1], np.int64),
        channels=np.zeros(3, np.uint8),
        resolution_ps=1.0,
        duration_s=1.0,
    )
    with pytest.raises(FileFormatError, match="sorted"):
        read_photons_npz(p)
    (tmp_path / "x.h5").write_bytes(b"")
    with pytest.raises(FileFormatError, match="unsupported format: empty file"):
        read_photons(tmp_path / "x.h5")


def test_stream_validation():
    with pytest.raises(InputError, match="equal"):
        PhotonStream(np.arange(3, dtype=np.int64), np.zeros(2, np.uint8), duration_s=1.0)
    with pytest.raises(InputError, match="integer"):
        PhotonStream(np.arange(3.0), np.zeros(3, np.uint8), duration_s=1.0)
    s = PhotonStream(np.arange(3, dtype=np.int64), np.zeros(3, np.uint8), duration_s=1.0)
    with pytest.raises(InputError, match="T3"):
        s.select(0, (0, 10))


@pytest.mark.realdata
def test_summary_reads_in_chunks():
    info = photon_file_summary(PH_T2, chunk_records=100_000)
    assert info["n_photons"] == 920177
    assert info["channels"] == {0: 531477, 1: 388700}
    assert info["record_type"] == "PicoHarpT2"
    assert info["rates_hz"][0] == pytest.approx(531477 / info["duration_s"])


@pytest.mark.realdata
def test_decay_text_files():
    irf = read_decay(REAL / "decay" / "IRF_data.txt")
    dec = read_decay(REAL / "decay" / "Decaytrace1")
    assert irf.bin_ns == pytest.approx(0.004) and dec.bin_ns == pytest.approx(0.004)
    assert irf.counts.size == 3301 and dec.counts.size == 3750
    assert irf.time_ns[0] == 0.0 and dec.time_ns[0] == 0.0
    assert irf.counts.sum() == 2322920 and dec.counts.sum() == 17112
    assert irf.time_ns[np.argmax(irf.counts)] == pytest.approx(2.18)


@pytest.mark.realdata
def test_two_column_text_header():
    tau, y, meta = read_two_column_text(REAL / "photons" / "amolf_cspbbr3_dot08_g2.txt")
    assert meta["tauStart_ns"] == "-210" and tau.size == 2550 and y.max() == 56


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 1\n0.1 2\n0.3 4\n0.4 5\n", "uniform"),
        ("0 1\n0.1 2\nfoo bar\n0.3 4\n", "line 3"),
        ("0 1\n0.1 -2\n0.2 4\n", "negative"),
        ("# nothing\n", "no numeric"),
    ],
    ids=["gap", "text-row", "negative", "empty"],
)
def test_decay_text_errors(tmp_path, text, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    with pytest.raises(FileFormatError, match=f"bad.txt.*{message}"):
        read_decay(bad)


@pytest.mark.realdata
def test_cli_info(tmp_path, capsys):
    from nanodomains.cli import main

    assert main(["photons", "info", str(HH_T3)]) == 0
    out = capsys.readouterr().out
    assert "77883" in out and "T3" in out
    cut = tmp_path / "cut.ptu"
    cut.write_bytes(HH_T3.read_bytes()[:5000])
    assert main(["photons", "info", str(cut)]) == 2
    assert "cut.ptu" in capsys.readouterr().err


def _write_phu(path: Path, hists: list[np.ndarray], res_s: list[float]) -> None:
    """Minimal PicoQuant PHU: magic, version, 48-byte tags (ident, index, type, value)."""

    def tag(name, idx, typ, val):
        packed = struct.pack("<d", val) if typ == 0x20000008 else struct.pack("<q", val)
        return name.encode().ljust(32, b"\0") + struct.pack("<iI", idx, typ) + packed

    INT, FLOAT, EMPTY = 0x10000008, 0x20000008, 0xFFFF0008
    head = b"PQHISTO\0" + b"1.0.00\0\0"
    tags = [tag("Measurement_Mode", -1, INT, 0), tag("Measurement_SubMode", -1, INT, 1),
            tag("HistoResult_NumberOfCurves", -1, INT, len(hists))]
    offset = len(head) + 48 * (len(tags) + 3 * len(hists) + 1)
    for i, (h, r) in enumerate(zip(hists, res_s)):
        tags += [tag("HistResDscr_DataOffset", i, INT, offset), tag("HistResDscr_HistogramBins", i, INT, h.size),
                 tag("HistResDscr_MDescResolution", i, FLOAT, r)]
        offset += h.nbytes
    tags.append(tag("Header_End", -1, EMPTY, 0))
    path.write_bytes(head + b"".join(tags) + b"".join(h.astype("<u4").tobytes() for h in hists))


def test_phu_histograms(tmp_path):
    rng = np.random.default_rng(0)
    hists = [rng.poisson(50, 300).astype(np.uint32), rng.poisson(5, 120).astype(np.uint32)]
    p = tmp_path / "decay.phu"
    _write_phu(p, hists, [4e-12, 16e-12])
    d0, d1 = read_decay(p), read_decay(p, curve=1)
    assert np.array_equal(d0.counts, hists[0]) and d0.bin_ns == pytest.approx(0.004)
    assert np.array_equal(d1.counts, hists[1]) and d1.bin_ns == pytest.approx(0.016)
    assert d1.time_ns[-1] == pytest.approx(119 * 0.016)
    with pytest.raises(InputError, match="curve 2"):
        read_decay(p, curve=2)
    cut = tmp_path / "cut.phu"
    cut.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(FileFormatError, match="cut.phu.*truncated"):
        read_decay(cut, curve=1)
