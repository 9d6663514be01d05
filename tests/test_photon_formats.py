"""Photon and decay file formats: type from magic bytes, every reader against independent
references (README numbers, phconvert, tttrlib), verification, and byte-level fuzzing.

References (../shared/realdata/README.md, computed with tools other than this project):
HT2 775,891 records / 376,890 overflows / 399,001 photons (191,648 + 207,353),
0.0004-119.9998 s, 1 ps, header count 1,597,208 wrong; HT3 44,141 photons; T3R 86,997
records, 9.34 s; SPC 48,931 / 25,863 / 71,009 / 28,635 on routing 0, 1, 8, 9, 69.24 s,
13.5 ns, 3.2959 ps; Full_SMS 48,779 photons; v1 T3 PTU 94,560 photons (48,001 + 46,559),
last photon 29.9997 s, 128 ps.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

from conftest import REALDATA

import numpy as np
import pytest

from nanodomains.errors import FileFormatError, InputError, NanodomainsError
from nanodomains.spectroscopy.photons_io import read_decay
from nanodomains.timetags import (
    PhotonStream, identify_file, iter_photon_chunks, photon_file_summary, read_photons, write_photons_npz, write_ptu,
)
from nanodomains.timetags.blocks import RecordCounts
from nanodomains.timetags.npz import iter_npz_chunks
from nanodomains.timetags.picoquant import read_legacy_header, read_phd

PH = REALDATA / "photons"
HT2 = PH / "bawendi_pcfs_DotD_run_one0.ht2"
HT3 = PH / "pqsample_hydraharp_v20.ht3"
T3R = PH / "pqsample_timeharp_v50.t3r"
SPC = PH / "tttrlib_bh_spc132_smDNA_m000.spc"
FULLSMS = PH / "fullsms_IRF_680nm.h5"
PTU_V1_T3 = PH / "pqsample_hydraharp_v10_t3.ptu"
PTU_HH_T2 = PH / "hydraharp_v20_t2.ptu"
PHD = REALDATA / "decay" / "pqsample_picoharp_v20.phd"


def read_counted(path, chunk_records=1 << 22):
    counts = RecordCounts()
    chunks = list(iter_photon_chunks(path, counts=counts, chunk_records=chunk_records))
    t = np.concatenate([c.times_ps for c in chunks])
    ch = np.concatenate([c.channels for c in chunks])
    micro = None if chunks[0].microtimes_ps is None else np.concatenate([c.microtimes_ps for c in chunks])
    return t, ch, micro, chunks[-1], counts


# ---------------------------------------------------------------------------------
# file type from the bytes


@pytest.mark.realdata
@pytest.mark.parametrize("path, kind", [
    (HT2, "ht2"), (HT3, "ht3"), (T3R, "t3r"), (SPC, "spc"), (FULLSMS, "fullsms"), (PTU_V1_T3, "ptu"), (PHD, "phd"),
    (REALDATA / "decay" / "IRF_data.txt", "text"),
], ids=lambda v: getattr(v, "name", v))
def test_identify_real_files(path, kind):
    assert identify_file(path).kind == kind


@pytest.mark.realdata
def test_type_comes_from_bytes_not_name(tmp_path):
    renamed = tmp_path / "decay.txt"
    renamed.write_bytes(HT3.read_bytes())
    assert identify_file(renamed).kind == "ht3"  # a binary file never falls through to the text reader
    with pytest.raises(FileFormatError, match="photon time-tag file, not a decay histogram"):
        read_decay(renamed)


def test_unsupported_and_degenerate_files(tmp_path):
    zeros = tmp_path / "zeros.ht3"
    zeros.write_bytes(bytes(4096))
    with pytest.raises(FileFormatError, match="unsupported format: all 4096 bytes zero"):
        read_photons(zeros)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(FileFormatError, match="unsupported format: empty file"):
        read_photons(empty)
    blob = tmp_path / "x.spc"
    blob.write_bytes(bytes([0, 0, 0, 0x80, 1, 2, 3]))  # clock 0, size not a multiple of 4
    with pytest.raises(FileFormatError, match="unsupported format: .spc name but not"):
        read_photons(blob)
    binary = tmp_path / "x.dat"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(FileFormatError, match=r"unsupported format: binary file of 1024 bytes starting 00 01 02"):
        read_decay(binary)
    with pytest.raises(FileFormatError, match="is a directory"):
        read_photons(tmp_path)
    sdt = tmp_path / "x.sdt"
    sdt.write_bytes(b"\x01\x02" * 100)
    with pytest.raises(FileFormatError, match="SDT"):
        read_decay(sdt)


# ---------------------------------------------------------------------------------
# readers against the README's references, record for record where a library reads the file


@pytest.mark.realdata
def test_ht2_counts_and_wrong_header_count():
    t, ch, micro, last, counts = read_counted(HT2)
    assert counts.records == 775_891 and counts.overflows == 376_890 and counts.photons == 399_001
    assert np.bincount(ch).tolist() == [191_648, 207_353]
    assert micro is None and last.resolution_ps == 1.0
    assert t[0] / 1e12 == pytest.approx(0.0004, abs=5e-5) and t[-1] / 1e12 == pytest.approx(119.9998, abs=5e-5)
    # the header's wrong count is detected and the true count read
    assert read_legacy_header(HT2).declared_records == 1_597_208
    assert any("declares 1597208 records, the file holds 775891" in w for w in last.warnings)


@pytest.mark.realdata
def test_ht3_counts_and_units():
    t, ch, micro, last, counts = read_counted(HT3, chunk_records=4001)
    assert counts.photons == 44_141 and counts.records == 53_606
    assert np.bincount(ch).tolist() == [7102, 26648, 3085, 7306]  # tttrlib 0.26.2 gives the same split
    assert last.sync_period_ps == pytest.approx(1e12 / 998_898) and last.resolution_ps == 16.0
    assert np.all(np.diff(t) >= 0) and last.duration_s == pytest.approx(10.0, abs=1e-3)
    assert last.warnings == []


@pytest.mark.realdata
def test_t3r_counts_and_phconvert_record_for_record():
    t, ch, micro, last, counts = read_counted(T3R, chunk_records=7001)
    assert counts.records == 86_997
    # README's "detector 0: 1,426" are phconvert's invalid records: 1,425 overflows + 1 marker
    assert (counts.photons, counts.overflows, counts.markers) == (85_571, 1_425, 1)
    assert t[-1] / 1e12 == pytest.approx(9.34, abs=0.005)
    assert last.resolution_ps == pytest.approx(70.237, abs=1e-3)
    import phconvert as phc
    ts, det, nanotimes, _ = phc.pqreader.load_t3r(str(T3R))
    valid = det == 1  # phconvert's "detector" of a T3R record is its valid bit
    assert np.array_equal(np.rint(micro / last.resolution_ps).astype(int), nanotimes[valid])
    # phconvert counts the marker record (the file's first record) as a wrap of 65,536 ticks
    assert np.array_equal(t // 100_000 + 65_536, ts[valid])


@pytest.mark.realdata
def test_spc_counts_and_units():
    t, ch, micro, last, counts = read_counted(SPC, chunk_records=9999)
    assert {c: int(n) for c, n in enumerate(np.bincount(ch)) if n} == {0: 48_931, 1: 25_863, 8: 71_009, 9: 28_635}
    assert last.duration_s == pytest.approx(69.24, abs=0.005)
    assert last.sync_period_ps == 13_500.0 and last.resolution_ps == pytest.approx(3.2959, abs=1e-4)
    assert any("no .set file" in w for w in last.warnings)  # the micro bin is an assumption, said so
    assert np.argmax(np.bincount(micro[ch == 0] // 3)) * 3 / 1000 == pytest.approx(2.48, abs=0.01)


@pytest.mark.realdata
@pytest.mark.parametrize("path", [SPC, HT3, PTU_V1_T3], ids=lambda p: p.suffix)
def test_against_tttrlib_record_for_record(path):
    import tttrlib
    ref = tttrlib.TTTR(str(path), {".spc": "SPC-130", ".ht3": "HT3", ".ptu": "PTU"}[path.suffix])
    s = read_photons(path)
    photons = ref.event_types == 0
    order = np.argsort(s.times_ps - s.microtimes_ps, kind="stable")  # tttrlib keeps record order
    nsync = np.rint((s.times_ps - s.microtimes_ps) / s.sync_period_ps).astype(np.int64)
    assert np.array_equal(np.sort(nsync), ref.macro_times[photons].astype(np.int64))
    assert np.array_equal(np.bincount(s.channels[order]), np.bincount(ref.routing_channels[photons]))


@pytest.mark.realdata
def test_fullsms_photons():
    s = read_photons(FULLSMS)
    assert s.n_photons == 48_779 and s.sync_period_ps is None
    assert s.resolution_ps == pytest.approx(12.207, abs=1e-3)
    assert 20_000 < s.microtimes_ps.min() and s.microtimes_ps.max() < 47_000  # ns in the file, ps here
    assert any("sync period" in w for w in s.warnings)


@pytest.mark.realdata
def test_ptu_v1_t3_reference():
    s = read_photons(PTU_V1_T3)
    assert s.n_photons == 94_560 and s.channel_counts() == {0: 48_001, 1: 46_559}
    assert s.times_ps[-1] / 1e12 == pytest.approx(29.9997, abs=1e-4)
    assert s.resolution_ps == pytest.approx(128.0, abs=1e-3) and s.warnings == []


@pytest.mark.realdata
def test_photon_hdf5_written_by_phconvert(tmp_path):
    import phconvert as phc
    s = read_photons(SPC)
    clock_s = s.sync_period_ps * 1e-12
    nsync = (s.times_ps - s.microtimes_ps) // int(s.sync_period_ps)
    data = dict(
        description="SPC sample as Photon-HDF5",
        photon_data=dict(
            timestamps=nsync, detectors=s.channels,
            nanotimes=np.rint(s.microtimes_ps / s.resolution_ps).astype(np.uint16),
            timestamps_specs=dict(timestamps_unit=clock_s),
            nanotimes_specs=dict(tcspc_unit=s.resolution_ps * 1e-12, tcspc_num_bins=4096,
                                 tcspc_range=4096 * s.resolution_ps * 1e-12),
            measurement_specs=dict(measurement_type="generic", laser_repetition_rate=1 / clock_s,
                                   detectors_specs=dict(spectral_ch1=[0, 1, 8, 9]))),
        acquisition_duration=70.0,
        setup=dict(num_pixels=4, num_spots=1, num_spectral_ch=1, num_polarization_ch=1, num_split_ch=1,
                   modulated_excitation=False, lifetime=True, excitation_alternated=[False],
                   excitation_cw=[False], laser_repetition_rates=[1 / clock_s]),
        identity=dict(author="test", author_affiliation="test"))
    path = tmp_path / "sample.hdf5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phc.hdf5.save_photon_hdf5(data, h5_fname=str(path), overwrite=True, close=True, validate=True)
    assert identify_file(path).kind == "photon-hdf5"
    chunks = list(iter_photon_chunks(path, chunk_records=20_000))
    assert len(chunks) == 9
    back = read_photons(path)
    assert np.array_equal(back.times_ps, s.times_ps) and np.array_equal(back.microtimes_ps, s.microtimes_ps)
    assert np.array_equal(back.channels, s.channels) and back.sync_period_ps == pytest.approx(s.sync_period_ps)


@pytest.mark.realdata
@pytest.mark.parametrize("path", [HT2, HT3, T3R, SPC, FULLSMS], ids=lambda p: p.suffix)
def test_chunked_equals_whole(path):
    whole = read_counted(path)
    small = read_counted(path, chunk_records=3001)
    for a, b in zip(whole[:3], small[:3]):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert small[3].duration_s == pytest.approx(whole[3].duration_s)


# ---------------------------------------------------------------------------------
# synthetic PicoHarp PT2/PT3 files: layout checked against phconvert's reader and hand-made truth


def picoharp_header(mode: int, n_records: int, *, range_no=3, sync_rate=40_000_000, tacq_ms=1000) -> bytes:
    text = (b"PicoHarp 300".ljust(16, b"\0") + b"2.0".ljust(6, b"\0") + b"test".ljust(18, b"\0")
            + b"1".ljust(12, b"\0") + b"01/01/20 00:00:00".ljust(18, b"\0") + b"\r\n" + bytes(256))
    binary = struct.pack("<10i", 0, 32, 4, 1, 0, mode, 0, range_no, 0, tacq_ms) + bytes(4 * 8 + 4 * 16 + 4 * 9 + 4 * 4 + 20)
    board = (b"PicoHarp 300".ljust(16, b"\0") + b"2.0".ljust(8, b"\0") + struct.pack("<6i", 1, 1, 0, 0, 0, 0)
             + struct.pack("<f", 0.004 * 2**range_no) + struct.pack("<2i", 0, 0) + bytes(4 * 24))
    tttr = struct.pack("<9i", 0, 0, 0, sync_rate, 1000, 0, 0, n_records, 0)
    return text + binary + board + tttr


def pt3_records(nsync_total, chans, dtimes, marker_at=None):
    """PT3 records with one overflow record (channel 15, dtime 0) per wrap of 65,536 syncs."""
    out, wraps = [], 0
    for i, (n, c, d) in enumerate(zip(nsync_total, chans, dtimes)):
        while n >> 16 > wraps:
            out.append(0xF0000000)
            wraps += 1
        if marker_at == i:
            out.append(0xF0000000 | (2 << 16) | (n & 0xFFFF))  # marker 2
        out.append(((c + 1) << 28) | (d << 16) | (n & 0xFFFF))
    return np.array(out, "<u4")


def test_pt3_matches_phconvert_and_truth(tmp_path):
    rng = np.random.default_rng(3)
    nsync = np.sort(rng.integers(0, 400_000, 500))
    chans = rng.integers(0, 2, 500)
    dtimes = rng.integers(0, 700, 500)  # 32 ps bins, 25 ns period: 781 bins
    recs = pt3_records(nsync, chans, dtimes, marker_at=10)
    path = tmp_path / "synthetic.pt3"
    path.write_bytes(picoharp_header(3, recs.size) + recs.tobytes())
    assert identify_file(path).kind == "pt3"
    counts = RecordCounts()
    s = read_photons(path)
    list(iter_photon_chunks(path, counts=counts, chunk_records=101))
    assert (counts.photons, counts.markers, counts.overflows) == (500, 1, 6)
    assert s.sync_period_ps == 25_000.0 and s.resolution_ps == pytest.approx(32.0)
    order = np.lexsort((dtimes, nsync))
    assert np.array_equal(s.times_ps, (nsync * 25_000 + dtimes * 32)[order])
    assert np.array_equal(s.channels, chans[order])
    import phconvert as phc
    ts, det, nano, meta, _ = phc.pqreader.load_pt3(str(path))
    photon = det < 15
    assert np.array_equal(nano[photon], dtimes)
    # phconvert counts every channel-15 record as an overflow, the marker too (PicoQuant: only
    # dtime 0 is an overflow): its times agree before the marker and are one wrap late after it
    assert np.array_equal(ts[photon][:10], nsync[:10]) and np.array_equal(ts[photon][10:], nsync[10:] + 65_536)
    assert np.array_equal(det[photon] - 1, chans)
    # the header fields phconvert reads at its own offsets agree with ours
    assert meta["nanotimes_unit"] == pytest.approx(s.resolution_ps * 1e-12)
    assert meta["laser_repetition_rate"] == pytest.approx(1e12 / s.sync_period_ps)


def test_pt2_truth(tmp_path):
    rng = np.random.default_rng(4)
    units = np.sort(rng.integers(0, 3 * 210_698_240, 300))  # 4 ps units, three wraps
    chans = rng.integers(0, 2, 300)
    out, wraps = [], 0
    for u, c in zip(units, chans):
        while u // 210_698_240 > wraps:
            out.append(0xF0000000)
            wraps += 1
        out.append((int(c) << 28) | int(u % 210_698_240))
    recs = np.array(out, "<u4")
    path = tmp_path / "synthetic.pt2"
    path.write_bytes(picoharp_header(2, recs.size, tacq_ms=3000) + recs.tobytes())
    s = read_photons(path)
    assert np.array_equal(s.times_ps, units * 4) and np.array_equal(s.channels, chans)
    assert s.microtimes_ps is None and s.resolution_ps == 4.0


def test_backwards_time_tags_are_an_error(tmp_path):
    recs = pt3_records(np.array([100, 200, 300]), np.array([0, 0, 0]), np.array([5, 5, 5]))
    recs[2] = (1 << 28) | (5 << 16) | 50  # channel 0 goes from sync 200 back to 50
    path = tmp_path / "back.pt3"
    path.write_bytes(picoharp_header(3, recs.size) + recs.tobytes())
    with pytest.raises(FileFormatError, match="go backwards in channel 0 at record 2"):
        read_photons(path)


def test_inconsistent_header_is_an_error(tmp_path):
    head = bytearray(picoharp_header(3, 1))
    struct.pack_into("<i", head, 328 + 28, 5)  # RangeNo 5 while the board says 32 ps (range 3)
    path = tmp_path / "bad.pt3"
    path.write_bytes(bytes(head) + pt3_records([1], [0], [1]).tobytes())
    with pytest.raises(FileFormatError, match="header inconsistent"):
        read_photons(path)


# ---------------------------------------------------------------------------------
# PTU verification (issue 18, item 4), photon-less and all-zero input


@pytest.mark.realdata
@pytest.mark.parametrize("declared", [100_000, 0, -5])
def test_ptu_header_count_is_checked_not_trusted(tmp_path, declared):
    import ptufile

    data = bytearray(PTU_HH_T2.read_bytes())
    ident = b"TTResult_NumberOfRecords".ljust(32, b"\0")
    pos = data.index(ident)
    struct.pack_into("<q", data, pos + 40, declared)
    path = tmp_path / "tampered.ptu"
    path.write_bytes(bytes(data))
    s = read_photons(path)
    assert s.n_photons == 305_565 and s.duration_s == pytest.approx(5.0, abs=0.005)
    with ptufile.PtuFile(PTU_HH_T2) as ptu:
        present = (PTU_HH_T2.stat().st_size - ptu.record_offset) // 4
    assert any(f"declares {declared} records, the file holds {present}" in w for w in s.warnings)


def test_photon_less_t3_file_is_refused(tmp_path):
    empty = PhotonStream(np.zeros(0, np.int64), np.zeros(0, np.uint8), microtimes_ps=np.zeros(0, np.int64),
                         resolution_ps=16, sync_period_ps=100_000, duration_s=0.5)
    path = write_ptu(empty, tmp_path / "none.ptu")
    with pytest.raises(FileFormatError, match="holds no photon records"):
        read_photons(path)
    from nanodomains.spectroscopy.lifetime import load_decay

    with pytest.raises(NanodomainsError, match="no photon records"):
        load_decay(path)


def test_all_zero_decay_is_refused(tmp_path):
    from nanodomains.spectroscopy.lifetime import fit_lifetime, load_decay

    path = tmp_path / "zero.txt"
    path.write_text("".join(f"{0.01 * i:.2f}\t0\n" for i in range(100)))
    decay = load_decay(path)
    with pytest.raises(InputError, match="empty"):
        fit_lifetime(decay)


def test_npz_is_read_in_chunks_and_checked(tmp_path):
    rng = np.random.default_rng(5)
    n = 50_000
    micro = rng.integers(0, 100_000, n)
    t = np.arange(n, dtype=np.int64) * 100_000 + micro
    s = PhotonStream(t, rng.integers(0, 2, n), microtimes_ps=micro, resolution_ps=1, sync_period_ps=100_000,
                     duration_s=n * 1e-7)
    for compressed in (True, False):
        path = write_photons_npz(s, tmp_path / f"s{compressed}.npz", compressed=compressed)
        chunks = list(iter_npz_chunks(path, chunk_records=7_000))
        assert len(chunks) == 8 and max(c.n_photons for c in chunks) == 7_000
        assert np.array_equal(np.concatenate([c.times_ps for c in chunks]), t)
        assert np.array_equal(np.concatenate([c.microtimes_ps for c in chunks]), micro)
    bad = PhotonStream(t, s.channels, microtimes_ps=micro * 1000, resolution_ps=1, sync_period_ps=100_000,
                       duration_s=1.0)
    path = write_photons_npz(bad, tmp_path / "bad.npz")
    with pytest.raises(FileFormatError, match="beyond the sync period"):
        read_photons(path)


def test_npz_memory_is_bounded(tmp_path):
    import tracemalloc

    n = 2_000_000
    s = PhotonStream(np.arange(n, dtype=np.int64) * 1000, np.zeros(n, np.uint8), duration_s=n * 1e-9)
    path = write_photons_npz(s, tmp_path / "big.npz")  # 18 MB of arrays
    del s
    tracemalloc.start()
    total = sum(c.n_photons for c in iter_npz_chunks(path, chunk_records=100_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total == n and peak < 6e6  # chunks of 0.9 MB; loading whole would need > 18 MB


# ---------------------------------------------------------------------------------
# fuzzing: truncated and byte-flipped copies of the first 64 kB of each real file


def outcome(read, path, reference, ref_path):
    """'error' (clean project error), 'warned', 'same' (unchanged result) or 'silent'; a traceback fails."""
    try:
        result = read(path)
    except NanodomainsError:
        return "error"
    warns = [w.replace(str(path), "X") for w in getattr(result, "warnings", [])]
    ref_warns = [w.replace(str(ref_path), "X") for w in getattr(reference, "warnings", [])]
    if warns != ref_warns:
        return "warned"
    fields = ("times_ps", "channels", "microtimes_ps") if isinstance(result, PhotonStream) else ("counts", "time_ns")

    def equal(a, b):  # a time unit changed below 1e-9 (the double's last bits) moves times by <= a few ps
        if a is None or b is None:
            return a is None and b is None
        return a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1)

    same = all(equal(getattr(result, f), getattr(reference, f)) for f in fields)
    return "same" if same else "silent"


def record_offset(path: Path) -> int:
    kind = identify_file(path).kind
    if kind == "ptu":
        import ptufile

        with ptufile.PtuFile(path) as ptu:
            return int(ptu.record_offset)
    if kind == "spc":
        return 4
    return read_legacy_header(path).record_offset


FUZZ_FILES = [HT2, HT3, T3R, SPC, PTU_V1_T3, PTU_HH_T2]


@pytest.mark.realdata
@pytest.mark.parametrize("source", FUZZ_FILES, ids=lambda p: p.suffix + ":" + p.stem[:12])
def test_fuzz_truncated(tmp_path, source):
    data = source.read_bytes()[: 64 * 1024]
    base = tmp_path / f"base{source.suffix}"
    base.write_bytes(data)
    reference = read_photons(base)
    offset = record_offset(source)
    cuts = [offset // 2, offset + 3, offset + 4 * 97 + 1, len(data) // 3, len(data) // 2 + 2, len(data) - 5]
    for cut in cuts:
        path = tmp_path / f"cut{cut}{source.suffix}"
        path.write_bytes(data[:cut])
        result = outcome(read_photons, path, reference, base)
        # SPC files carry no record count: a cut on a record boundary cannot be detected (cuts here are not)
        assert result in ("error", "warned"), f"cut at {cut} of {source.name}: {result}"


@pytest.mark.realdata
@pytest.mark.parametrize("source", FUZZ_FILES, ids=lambda p: p.suffix + ":" + p.stem[:12])
def test_fuzz_byte_flips(tmp_path, source):
    data = source.read_bytes()[: 64 * 1024]
    base = tmp_path / f"base{source.suffix}"
    base.write_bytes(data)
    reference = read_photons(base)
    offset = record_offset(source)
    rng = np.random.default_rng(zlib.crc32(source.name.encode()))
    tally = {"header": {}, "records": {}}
    for k in range(50):
        region = "header" if k % 2 == 0 else "records"
        width = int(rng.choice([1, 4, 16]))
        lo, hi = (0, max(offset - width, 1)) if region == "header" else (offset, len(data) - width)
        pos = int(rng.integers(lo, hi))
        mutated = bytearray(data)
        mutated[pos: pos + width] = bytes(b ^ 0xFF for b in mutated[pos: pos + width])
        path = tmp_path / f"flip{k}{source.suffix}"
        path.write_bytes(bytes(mutated))
        result = outcome(read_photons, path, reference, base)  # a traceback fails the test here
        tally[region][result] = tally[region].get(result, 0) + 1
    # the header is checked field by field: a flip there is an error, a warning or harmless
    assert "silent" not in tally["header"], tally
    # a flipped record can decode as another valid record (no format here has a checksum): those
    # changes are undetectable; what is asserted is no traceback and that most flips are caught
    caught = tally["records"].get("error", 0) + tally["records"].get("warned", 0)
    print(source.name, tally)
    assert caught >= 5, tally


@pytest.mark.realdata
def test_fuzz_histograms_and_hdf5(tmp_path):
    data = PHD.read_bytes()
    base = tmp_path / "base.phd"
    base.write_bytes(data)
    reference = read_decay(base)
    rng = np.random.default_rng(11)
    curves = read_phd(PHD)
    assert [c.integral_count for c in curves] == [int(c.counts.sum()) for c in curves]
    for cut in (100, 700, 3000, len(data) // 2, len(data) - 3):
        path = tmp_path / f"cut{cut}.phd"
        path.write_bytes(data[:cut])
        assert outcome(read_decay, path, reference, base) == "error"
    for k in range(30):  # flips in curve 0's counts change its integral: caught
        mutated = bytearray(data)
        pos = int(rng.integers(0, 65536)) * 4 + 3 * 4096  # inside the first curve's data region
        pos = min(pos, len(data) - 4)
        mutated[pos] ^= 0x10
        path = tmp_path / f"flip{k}.phd"
        path.write_bytes(bytes(mutated))
        assert outcome(read_decay, path, reference, base) in ("error", "same")
    h5 = FULLSMS.read_bytes()
    for cut in (100, 5000, len(h5) // 2):
        path = tmp_path / f"cut{cut}.h5"
        path.write_bytes(h5[:cut])
        with pytest.raises(FileFormatError):
            read_photons(path)


# ---------------------------------------------------------------------------------
# summaries and the CLI


@pytest.mark.realdata
def test_summary_of_every_format():
    for path in (HT2, HT3, T3R, SPC, FULLSMS):
        s = photon_file_summary(path)
        assert s["n_photons"] > 0 and s["format"]
    assert photon_file_summary(T3R)["records_markers"] == 1


@pytest.mark.realdata
def test_cli_info_reads_legacy_formats(capsys):
    from nanodomains.cli import main

    assert main(["photons", "info", str(HT2)]) == 0
    captured = capsys.readouterr()
    assert "399001" in captured.out and "HT2" in captured.out
    assert "declares 1597208 records" in captured.err
    assert main(["photons", "info", str(PHD)]) == 2
    assert "unsupported format" in capsys.readouterr().err


@pytest.mark.realdata
def test_v1_t3_g2_reference():
    """README: pulsed g2(0) = 0.214 +- 0.076, zero-peak area 8 against side peaks 32-47 (+-200 ns windows)."""
    from nanodomains.spectroscopy.g2 import compute_g2_file

    r = compute_g2_file(PTU_V1_T3, window_ns=2000, bin_ns=1.0)
    assert r.period_ns == pytest.approx(400.0) and r.zero_peak_area == 8
    assert min(r.side_peak_areas) == 32 and max(r.side_peak_areas) == 47
    assert r.g2_0.value == pytest.approx(0.214, abs=0.001) and r.g2_0.stderr == pytest.approx(0.076, abs=0.002)


def _photon_hdf5(path: Path, s: PhotonStream) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        pd = f.create_group("photon_data")
        pd["timestamps"] = (s.times_ps - s.microtimes_ps) // int(s.sync_period_ps)
        pd["detectors"] = s.channels
        pd["nanotimes"] = (s.microtimes_ps // 8).astype(np.uint16)
        pd["timestamps_specs/timestamps_unit"] = s.sync_period_ps * 1e-12
        pd["nanotimes_specs/tcspc_unit"] = 8e-12
        pd["measurement_specs/laser_repetition_rate"] = 1e12 / s.sync_period_ps
    return path


@pytest.mark.parametrize("fmt", ["photon-hdf5", "npz"])
def test_fuzz_photon_hdf5_and_npz(tmp_path, fmt):
    rng = np.random.default_rng(12)
    n = 20_000
    micro = rng.integers(0, 12_500, n) // 8 * 8
    s = PhotonStream(np.sort(rng.choice(10**6, n, replace=False)) * 12_500 + micro, rng.integers(0, 2, n),
                     microtimes_ps=micro, resolution_ps=8, sync_period_ps=12_500, duration_s=0.0125)
    base = (_photon_hdf5(tmp_path / "base.h5", s) if fmt == "photon-hdf5"
            else write_photons_npz(s, tmp_path / "base.npz"))
    reference = read_photons(base)
    assert np.array_equal(reference.times_ps, s.times_ps) and np.array_equal(reference.microtimes_ps, micro)
    data = base.read_bytes()
    for cut in (10, len(data) // 3, len(data) - 7):
        path = tmp_path / f"cut{cut}{base.suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(FileFormatError):
            read_photons(path)
    outcomes = set()
    for k in range(40):
        mutated = bytearray(data)
        pos = int(rng.integers(0, len(data) - 4))
        mutated[pos: pos + 4] = bytes(b ^ 0xFF for b in mutated[pos: pos + 4])
        path = tmp_path / f"flip{k}{base.suffix}"
        path.write_bytes(bytes(mutated))
        outcomes.add(outcome(read_photons, path, reference, base))  # never a traceback
    # npz members carry a CRC (zip): every flip of the data is caught; HDF5 datasets carry none
    if fmt == "npz":
        assert "silent" not in outcomes, outcomes
