"""kMC hops per second on the shipped CHGNet barrier table (paper_fig1, 500 K).

``PYTHONPATH=src python benchmarks/bench_kmc_table.py``. Paths without a harmonic-TST
attempt frequency take the bulk value; while the table lacks ``along_fault_I`` that pair
borrows ``along_fault/Br`` (explicit override; it does not change the cost).
"""
import time
from nanodomains.migration import build_x_lattice, run_kmc
from nanodomains.migration.landscape import TabulatedLandscape, load_table
from nanodomains.structure import paper_fig1
lat = build_x_lattice(paper_fig1(seed=1), seed=1)
land = TabulatedLandscape(load_table(), temperature_k=500.0, missing_attempt_frequency="bulk",
                          overrides={} if any(p.name == "along_fault_I" for p in load_table().paths)
                          else {"along_fault/I": "along_fault/Br"})
run_kmc(lat, land, max_hops=20000, vacancies=2, seed=1, n_frames=0)  # JIT warm-up
for kw in ({"vacancies": 2}, {"vacancy_fraction": 0.01}):
    t0 = time.perf_counter()
    r = run_kmc(lat, land, max_hops=2_000_000, time_ns=1e9, seed=1, n_frames=0, **kw)
    dt = time.perf_counter() - t0
    print(kw, r.n_vacancies, r.hops, f"{dt:.2f} s", f"{r.hops / dt:.3g} hops/s", "rp crossings", r.boundary_crossings()["rp"], f"{r.time_ps:.4g} ps")
