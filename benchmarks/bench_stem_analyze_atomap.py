"""`nanodomains stem analyze` end to end vs Atomap 0.4.2's pipeline on real images (issue 13).

Both sides run as subprocesses, timed from process start to output files written, on
the same image in the same run:

* ours: ``python -m nanodomains.cli stem analyze IMAGE --names B,A,O --out DIR``
  (lattice, columns, GPA, domains, boundaries, records and the overview figure;
  ``--names B,A,O``: SrTiO3 is an ABO3 perovskite);
* Atomap: this script with ``--atomap-worker``: ``hs.load`` of the same file,
  ``get_atom_positions`` with ``separation`` = 0.3 x the known period (its maximum
  filter's square window of half-width ``separation`` must not reach the tail of the
  bright A column next to a B column, a/2 away along x and y: at 0.4 a it does and
  half of the B columns are lost, 2542 positions of ~5000 on the 2048^2 image; at
  0.3 a Atomap finds A and B, as many positions as our A + B columns),
  ``Sublattice.find_nearest_neighbors``,
  ``refine_atom_positions_using_2d_gaussian`` of every position (elliptical 2-D
  Gaussians, Atomap's default window 0.4 x the nearest-neighbour distance),
  ``construct_zone_axes`` (timed; on the A + B positions it may find no zone axis)
  and the lattice from the refined positions (the two most frequent non-collinear
  nearest-neighbour vectors, :func:`lattice_from_positions`); positions written to CSV.

Images: 1024^2 ``Acquisition_18.emd`` (SrTiO3 [001], rotated ~17 deg, its own
calibration 12.2465 pm/px, period 413 pm per the realdata README); 2048^2 a 2x2
mirror tile of ``STOimage_1.ser`` (SrTiO3 [001], axis-aligned, so the mirror keeps
the lattice orientation; 10.0127 pm/px, period ~403 pm) written with its calibration
to a temporary .tif (``stem.io.save_image``). The wall time of a loaded machine
depends on the other jobs; the CPU time (user + sys of the child process, from
``getrusage(RUSAGE_CHILDREN)``) much less; both are printed with the load average.

Needs the bench extra (``pip install atomap==0.4.2``) and ``../shared/realdata``.

Run: python -W ignore benchmarks/bench_stem_analyze_atomap.py [--sizes 1024,2048] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEM = ROOT.parent / "shared" / "realdata" / "stem"
ACQ18 = STEM / "ncem_STO_Acquisition_18.emd"
STO1 = STEM / "ncem_STO_16_STOimage_1.ser"


def run_child(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Run ``cmd``: (wall s from start to exit, CPU s = user + sys of it and its children, stdout)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def mirror_tile_2048(tmp: Path) -> tuple[Path, float, str]:
    """2x2 mirror tile of STOimage_1 (1024^2 -> 2048^2) written as a calibrated .tif."""
    from nanodomains.stem.io import image_from_array, load_image, save_image

    img = load_image(STO1)
    a = img.values
    tile = np.block([[a, a[:, ::-1]], [a[::-1, :], a[::-1, ::-1]]])
    px = float(img.attrs["pixel_size_pm"])
    path = save_image(image_from_array(tile, px), tmp / "STOimage_1_mirror2x2.tif")
    return path, px, "2x2 mirror tile of ncem_STO_16_STOimage_1.ser"


def lattice_from_positions(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two shortest non-collinear lattice vectors of refined positions: median of the
    nearest-neighbour vectors in the most populated direction, then in the most populated
    direction > 30 deg from it (the positions' own lattice, A and B columns alike)."""
    from scipy.spatial import cKDTree

    _, idx = cKDTree(xy).query(xy, k=5)
    d = (xy[idx[:, 1:]] - xy[:, None, :]).reshape(-1, 2)
    d[(d[:, 0] < 0) | ((d[:, 0] == 0) & (d[:, 1] < 0))] *= -1  # fold to one half plane
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    hist, edges = np.histogram(ang, bins=90, range=(-90, 90))
    first = 0.5 * (edges[np.argmax(hist)] + edges[np.argmax(hist) + 1])
    v1 = np.median(d[np.abs(ang - first) < 5], axis=0)
    far = np.abs((ang - first + 90) % 180 - 90) > 30
    hist2, _ = np.histogram(ang[far], bins=90, range=(-90, 90))
    second = 0.5 * (edges[np.argmax(hist2)] + edges[np.argmax(hist2) + 1])
    v2 = np.median(d[far & (np.abs(ang - second) < 5)], axis=0)
    return v1, v2


def atomap_worker(path: str, period_px: float, out_csv: str) -> None:
    """Atomap 0.4.2's pipeline on one image file; prints stage timings as JSON."""
    t0 = time.perf_counter()
    import atomap.api as am
    import hyperspy.api as hs

    times = {"import": time.perf_counter() - t0}
    t = time.perf_counter()
    s = hs.load(path)
    if isinstance(s, list):
        s = next(x for x in s if x.axes_manager.signal_dimension == 2)
    s = hs.signals.Signal2D(np.asarray(s.data, dtype=np.float64))  # atomap works in px
    times["load"] = time.perf_counter() - t
    t = time.perf_counter()
    pos = am.get_atom_positions(s, separation=max(2, int(round(0.3 * period_px))))
    times["get_atom_positions"] = time.perf_counter() - t
    t = time.perf_counter()
    sub = am.Sublattice(pos, s.data)
    sub.find_nearest_neighbors()
    sub.refine_atom_positions_using_2d_gaussian(show_progressbar=False)
    times["refine_2d_gaussian"] = time.perf_counter() - t
    t = time.perf_counter()
    sub.construct_zone_axes()
    zones = np.array(sub.zones_axis_average_distances, float).reshape(-1, 2)
    times["construct_zone_axes"] = time.perf_counter() - t
    t = time.perf_counter()
    xy = np.column_stack([sub.x_position, sub.y_position])
    v1, v2 = lattice_from_positions(xy)
    times["lattice"] = time.perf_counter() - t
    np.savetxt(out_csv, np.column_stack([sub.x_position, sub.y_position]), delimiter=",",
               header="x_px,y_px", comments="")
    print(json.dumps({"times": times, "n": len(pos), "a1_px": float(np.hypot(*v1)), "a2_px": float(np.hypot(*v2)),
                      "n_zone_axes": len(zones)}))


def ours_result(out: Path) -> dict:
    rec = json.loads((out / "domains.json").read_text())
    lat = rec["lattice"]
    return {"n": sum(1 for _ in open(out / "columns.csv")) - 1, "a_pm": lat["pseudocubic_pm"]["value"],
            "domains": len(rec["domains"]), "boundaries": len(rec["boundaries"]), "elapsed": rec.get("elapsed_s")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--keep", default=None, help="keep outputs in this folder")
    ap.add_argument("--atomap-worker", nargs=3, metavar=("IMAGE", "PERIOD_PX", "OUT_CSV"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.atomap_worker:
        atomap_worker(args.atomap_worker[0], float(args.atomap_worker[1]), args.atomap_worker[2])
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_analyze_"))
    tmp.mkdir(parents=True, exist_ok=True)
    cases = []
    sizes = {int(s) for s in args.sizes.split(",")}
    if 1024 in sizes:
        cases.append(("1024^2", ACQ18, 413.0 / 12.2465, "ncem_STO_Acquisition_18.emd (its calibration)"))
    if 2048 in sizes:
        path, px, what = mirror_tile_2048(tmp)
        cases.append(("2048^2", path, 403.0 / px, what))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    rows = []
    for size, path, period_px, what in cases:
        load0 = os.getloadavg()[0]
        out = tmp / f"ours_{size[:4]}"
        w_o, c_o, _ = run_child([sys.executable, "-W", "ignore", "-m", "nanodomains.cli", "stem", "analyze",
                                 str(path), "--names", "B,A,O", "--out", str(out)], env)
        ours = ours_result(out)
        w_a, c_a, txt = run_child([sys.executable, "-W", "ignore", __file__, "--atomap-worker", str(path),
                                   f"{period_px:.3f}", str(tmp / f"atomap_{size[:4]}.csv")], env)
        at = json.loads(txt.strip().splitlines()[-1])
        load1 = os.getloadavg()[0]
        rows.append((size, what, ours, at, w_o, c_o, w_a, c_a, load0, load1))
        print(f"{size}: {what}\n  ours: {w_o:.1f} s wall, {c_o:.1f} s CPU, {ours}\n"
              f"  atomap: {w_a:.1f} s wall, {c_a:.1f} s CPU, {at}", flush=True)
    print("\n| image | ours: columns, a | ours wall / CPU (s) | atomap: positions, lattice vectors from them "
          "| atomap wall / CPU (s) | atomap stages (s) | ratio ours/atomap wall, CPU | load avg (1 min) start-end |")
    print("|---|---|---|---|---|---|---|---|")
    for size, what, ours, at, w_o, c_o, w_a, c_a, l0, l1 in rows:
        st = ", ".join(f"{k} {v:.1f}" for k, v in at["times"].items())
        print(f"| {size} {what} | {ours['n']}, {ours['a_pm']:.1f} pm, {ours['domains']} domain(s), "
              f"{ours['boundaries']} boundary(ies) | {w_o:.1f} / {c_o:.1f} | {at['n']}, {at['a1_px']:.2f} / "
              f"{at['a2_px']:.2f} px ({at['n_zone_axes']} zone axes) | {w_a:.1f} / {c_a:.1f} | {st} | {w_o / w_a:.2f}, {c_o / c_a:.2f} "
              f"| {l0:.1f}-{l1:.1f} |")
    print(f"\noutputs in {tmp}")


if __name__ == "__main__":
    main()
