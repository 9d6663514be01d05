"""Throughput of the photon readers (records per second) beside the kept libraries.

For every format with a real sample file, a file of ``--records`` records (default 1e7)
is synthesised in a temporary folder by repeating the real file's records, with one
overflow record between repetitions so that time keeps increasing (the header's
record count is patched to match). Each reader then runs in its own subprocess, which
reports wall time, photons and peak resident memory (``VmHWM``):

* this project: ``nanodomains.timetags.iter_photon_chunks`` (chunked, verified);

Imports and just-in-time compilation (numba: this project's per-channel order check,
phconvert's overflow correction) happen before the clock starts: the table is the
steady-state throughput of a read.
* the library reading the same format, where one does: ptufile (PTU), tttrlib (PTU,
  HT3, SPC-130; only if importable, e.g. ``--tttrlib-path /tmp/ttlib`` after
  ``pip install --no-deps --target /tmp/ttlib tttrlib``), phconvert (T3R), h5py
  (Photon-HDF5 arrays read whole), numpy (npz loaded whole).

Run (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_photon_readers.py --records 10000000 \\
        --tttrlib-path /tmp/ttlib --markdown

Real files are taken from ``../shared/realdata/photons`` (or ``$NANODOMAINS_REALDATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REALDATA = Path(os.environ.get("NANODOMAINS_REALDATA") or Path(__file__).resolve().parents[2] / "shared" / "realdata")
PH = REALDATA / "photons"

# (name, source file, record offset getter, overflow record that adds one wrap, header patch)
SOURCES = {
    "HT2": (PH / "bawendi_pcfs_DotD_run_one0.ht2", 0xFE000001),
    "HT3": (PH / "pqsample_hydraharp_v20.ht3", 0xFE000001),
    "T3R": (PH / "pqsample_timeharp_v50.t3r", 0x08000000),
    "SPC": (PH / "tttrlib_bh_spc132_smDNA_m000.spc", 0xC0000001),
    "PTU-T3": (PH / "hydraharp_v20_t3.ptu", 0xFE000001),
}


def _offset_and_count_patch(kind: str, path: Path):
    """Byte offset of the records, and a function writing the record count into a header."""
    if kind == "SPC":
        return 4, lambda head, n: head
    if kind.startswith("PTU"):
        import ptufile

        with ptufile.PtuFile(path) as ptu:
            offset = int(ptu.record_offset)
        data = path.read_bytes()[:offset]
        pos = data.index(b"TTResult_NumberOfRecords".ljust(32, b"\0")) + 40

        def patch(head, n):
            head = bytearray(head)
            struct.pack_into("<q", head, pos, n)
            return bytes(head)

        return offset, patch
    from nanodomains.timetags.picoquant import read_legacy_header

    offset = read_legacy_header(path).record_offset
    fmt, pos = ("<q", offset - 8) if kind in ("HT2", "HT3") else ("<i", offset - 8)

    def patch(head, n):
        head = bytearray(head)
        struct.pack_into(fmt, head, pos, n)
        return bytes(head)

    return offset, patch


def synthesise(kind: str, n_records: int, folder: Path) -> Path:
    """A file of ``n_records`` records: the real records repeated, one wrap record between copies."""
    src, wrap_record = SOURCES[kind]
    offset, patch = _offset_and_count_patch(kind, src)
    data = src.read_bytes()
    raw = np.frombuffer(data[offset: offset + 4 * ((len(data) - offset) // 4)], "<u4")
    block = np.concatenate([raw, np.array([wrap_record], "<u4")])
    reps = -(-n_records // block.size)
    records = np.tile(block, reps)[:n_records]
    out = folder / f"bench_{kind.lower()}{src.suffix}"
    with open(out, "wb") as fh:
        fh.write(patch(data[:offset], n_records))
        records.tofile(fh)
    return out


def synthesise_hdf5_and_npz(n_photons: int, folder: Path) -> tuple[Path, Path]:
    """Photon-HDF5 and project npz files of ``n_photons`` photons (the SPC photons repeated)."""
    import h5py

    from nanodomains.timetags import PhotonStream, read_photons, write_photons_npz

    s = read_photons(SOURCES["SPC"][0])
    reps = -(-n_photons // s.n_photons)
    nsync = (s.times_ps - s.microtimes_ps) // int(s.sync_period_ps)
    span = int(nsync[-1]) + 1
    ts = (nsync[None, :] + span * np.arange(reps)[:, None]).ravel()[:n_photons]
    det = np.tile(s.channels, reps)[:n_photons]
    nano = np.tile(np.rint(s.microtimes_ps / s.resolution_ps).astype(np.uint16), reps)[:n_photons]
    h5 = folder / "bench.hdf5"
    with h5py.File(h5, "w") as f:
        f.attrs["format_name"] = b"Photon-HDF5"
        f.attrs["format_version"] = b"0.5"
        pd = f.create_group("photon_data")
        pd["timestamps"] = ts
        pd["detectors"] = det
        pd["nanotimes"] = nano
        pd["timestamps_specs/timestamps_unit"] = s.sync_period_ps * 1e-12
        pd["nanotimes_specs/tcspc_unit"] = s.resolution_ps * 1e-12
        pd["measurement_specs/laser_repetition_rate"] = 1e12 / s.sync_period_ps
    micro = nano.astype(np.int64) * int(round(s.resolution_ps * 1000)) // 1000
    stream = PhotonStream(ts * int(s.sync_period_ps) + micro, det, microtimes_ps=micro, resolution_ps=1.0,
                          sync_period_ps=s.sync_period_ps, duration_s=float(ts[-1] * s.sync_period_ps * 1e-12))
    npz = write_photons_npz(stream, folder / "bench.npz", compressed=False)
    return h5, npz


OURS = """
from nanodomains.timetags import iter_photon_chunks
from nanodomains.timetags.blocks import RecordCounts
import nanodomains.timetags.picoquant, nanodomains.timetags.bh, nanodomains.timetags.hdf5, ptufile, h5py
import numpy as np
from nanodomains.timetags.stream import StreamChecks
StreamChecks("warm-up", None, 1.0).macro_order(np.zeros(2, np.int64), np.zeros(2, np.uint8), np.arange(2))
#RUN
c = RecordCounts()
n = 0
for chunk in iter_photon_chunks(PATH, counts=c):
    n += chunk.n_photons
records = c.records or n
"""

LIBRARIES = {
    "ptufile": """
import ptufile
#RUN
with ptufile.PtuFile(PATH) as p:
    rec = p.decode_records()
n = int((rec["channel"] >= 0).sum()); records = rec.size
""",
    "tttrlib": """
import tttrlib
#RUN
t = tttrlib.TTTR(PATH, TYPE)
n = int((t.event_types == 0).sum()); records = n
""",
    "phconvert": """
import phconvert
phconvert.pqreader.load_t3r(WARMUP)  # numba JIT of its overflow correction, outside the timing
#RUN
ts, det, nt, meta = phconvert.pqreader.load_t3r(PATH)
n = int((det == 1).sum()); records = ts.size
""",
    "h5py (whole arrays)": """
import h5py
#RUN
with h5py.File(PATH, "r") as f:
    ts = f["photon_data/timestamps"][:]; det = f["photon_data/detectors"][:]; nt = f["photon_data/nanotimes"][:]
n = records = ts.size
""",
    "numpy np.load (whole)": """
import numpy as np
#RUN
with np.load(PATH) as z:
    t = z["times_ps"]; c = z["channels"]; m = z["microtimes_ps"]
n = records = t.size
""",
}

RUNNER = """
import time, json, sys
PATH, TYPE, WARMUP = sys.argv[1], sys.argv[2], sys.argv[3]
{setup}
t0 = time.perf_counter()
{work}
dt = time.perf_counter() - t0
# VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's peak over fork)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps(dict(seconds=dt, photons=int(n), records=int(records), rss_mb=hwm / 1024)))
"""


def run(body: str, path: Path, typ: str, env: dict) -> dict | None:
    """Run one reader in a fresh interpreter: imports outside the timing, the read inside."""
    setup, _, work = body.partition("#RUN")
    proc = subprocess.run([sys.executable, "-c", RUNNER.format(setup=setup, work=work), str(path), typ,
                           str(SOURCES["T3R"][0])],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--tttrlib-path", default=None, help="folder holding tttrlib (pip --target), added to PYTHONPATH")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.tttrlib_path:
        env["PYTHONPATH"] = env.get("PYTHONPATH", "") + os.pathsep + args.tttrlib_path
    plan = [  # (format, file maker, library readers with tttrlib container type)
        ("HT2 (HydraHarp T2)", "HT2", []),
        ("HT3 (HydraHarp T3)", "HT3", [("tttrlib", "HT3")]),
        ("T3R (TimeHarp 200)", "T3R", [("phconvert", "")]),
        ("SPC-130 (B&H)", "SPC", [("tttrlib", "SPC-130")]),
        ("PTU HydraHarp T3", "PTU-T3", [("ptufile", ""), ("tttrlib", "PTU")]),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_photons_") as tmp:
        folder = Path(tmp)
        for label, kind, libs in plan:
            path = synthesise(kind, args.records, folder)
            ours = run(OURS, path, "", env)
            rows.append((label, "nanodomains (chunked, verified)", ours))
            for lib, typ in libs:
                rows.append((label, lib, run(LIBRARIES[lib], path, typ, env)))
            for _, _, r in rows[-1 - len(libs):]:
                if r and "error" not in r:
                    r["records"] = args.records  # every reader read the same file of args.records records
            path.unlink()
        h5, npz = synthesise_hdf5_and_npz(args.records, folder)
        rows.append(("Photon-HDF5", "nanodomains (chunked, verified)", run(OURS, h5, "", env)))
        rows.append(("Photon-HDF5", "h5py (whole arrays)", run(LIBRARIES["h5py (whole arrays)"], h5, "", env)))
        rows.append(("project npz (uncompressed)", "nanodomains (chunked, verified)", run(OURS, npz, "", env)))
        rows.append(("project npz (uncompressed)", "numpy np.load (whole)",
                     run(LIBRARIES["numpy np.load (whole)"], npz, "", env)))
    header = "| format | reader | records in file | photons | time (s) | Mrecords/s | peak RSS (MB) |"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    print(header)
    print("|---|---|---|---|---|---|---|")
    for label, reader, r in rows:
        if r is None or "error" in r:
            print(f"| {label} | {reader} | - | - | - | - | failed: {(r or {}).get('error', '?')} |")
            continue
        rate = r["records"] / r["seconds"] / 1e6
        print(f"| {label} | {reader} | {r['records']:,} | {r['photons']:,} | {r['seconds']:.2f} | {rate:.1f} | "
              f"{r['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
