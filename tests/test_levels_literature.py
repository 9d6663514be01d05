"""The literature table: every row traced to a source, the fit reproducible, bad files rejected."""

import numpy as np
import pytest

from nanodomains import materials
from nanodomains.errors import FileFormatError
from nanodomains.optics import literature as li


def test_every_row_has_source_location_and_provenance():
    rows = li.load_literature()
    assert len(rows) >= 15
    for r in rows:
        assert r["source"] and r["doi"] and r["location"] and r["provenance"] and r["checked"]
        assert r["use"] in ("fit", "check", "heldout", "calibration", "model")
    # the seed's 620 nm is never a fit row
    assert next(r for r in rows if r["id"] == "pl_seed_620")["use"] == "heldout"


def test_fit_reproduces_the_stored_material_constants():
    fit = li.fit_level_parameters()
    vals = dict(zip(fit.names, fit.values))
    assert vals["reduced_mass_br_m0"] == pytest.approx(materials.FIT_REDUCED_MASS_BR_M0, abs=0.002)
    assert vals["gap_rt_br_ev"] == pytest.approx(materials.FIT_GAP_RT_BR_EV, abs=0.002)
    assert vals["gap_rt_i_ev"] == pytest.approx(materials.FIT_GAP_RT_I_EV, abs=0.002)
    assert np.all(fit.stderr > 0) and fit.dof == 0
    assert max(abs(v) for v in fit.check_residual_mev.values()) < 35.0


def test_bad_table_is_rejected(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("id,quantity\nx,pl_peak\n")
    with pytest.raises(FileFormatError, match="columns"):
        li.load_literature(p)
    good = (li.LITERATURE_COLUMNS, )
    line = ",".join(good[0]) + "\n" + "a,pl_peak,CsPbBr3,1.0,abc,,460,5,nm,RT,fit,src,doi,fig,figure,yes,\n"
    p.write_text(line)
    with pytest.raises(FileFormatError, match="edge_nm"):
        li.load_literature(p)
