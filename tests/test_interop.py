"""HyperSpy interop and exported files (nanodomains.interop).

Round trips: a HyperSpy signal goes into a real analysis (the STEM analysis of an
analytic perovskite image, GPA, the PL movie analysis of a simulated movie) and its
outputs come back as HyperSpy signals with the input's calibration and units. Every
written file is opened by the library its users open it with (tifffile, HyperSpy,
xarray, pandas/pyarrow). The real file is loaded by HyperSpy itself and must give the
pixel size of the project's own reader.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import REALDATA

from nanodomains.errors import CalibrationError, InputError
from nanodomains.interop import export, from_hyperspy, read_output, records_table, to_hyperspy
from nanodomains.materials import HC_EV_NM
from nanodomains.stem.io import image_from_array, load_image
from nanodomains.testing import fig4_like, perovskite_image

hs = pytest.importorskip("hyperspy.api", reason="HyperSpy interop needs the extra nanodomains[hyperspy]")

PTO = REALDATA / "stem" / "pto_sro_haadf.hspy"

TEM_ATTRS = dict(beam_energy_kev=300.0, convergence_semiangle_mrad=21.4, detector_inner_mrad=80.0,
                 detector_outer_mrad=200.0, camera_length_mm=115.0, microscope="Titan")


def _calibrated_signal(data, scale_nm=0.04, offset_nm=(0.5, 1.5), units="nm"):
    """A Signal2D as a microscopist has it: signal axes x, y named, in nm, with TEM metadata."""
    s = hs.signals.Signal2D(data)
    x_ax, y_ax = s.axes_manager.signal_axes  # HyperSpy's natural order: x first
    for ax, name, off in ((x_ax, "x", offset_nm[1]), (y_ax, "y", offset_nm[0])):
        ax.name, ax.units, ax.scale, ax.offset = name, units, scale_nm, off
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    s.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", 25.0)
    s.metadata.set_item("Acquisition_instrument.TEM.Detector.STEM.inner_angle", 68.0)
    s.metadata.set_item("General.title", "analytic perovskite")
    return s


def _signal_axes(signal):
    return [(a.name, a.scale, a.offset, a.units) for a in signal.axes_manager.signal_axes]


# ---------------------------------------------------------------- conversions


def test_image_round_trip_keeps_axes_units_and_tem_metadata():
    img = image_from_array(np.random.default_rng(0).random((32, 40)), 15.0, origin_nm=(1.0, 2.0),
                           title="HAADF", **TEM_ATTRS)
    s = to_hyperspy(img)
    assert isinstance(s, hs.signals.Signal2D) and s.data.shape == (32, 40)
    assert _signal_axes(s) == [("x", 0.015, 2.0, "nm"), ("y", 0.015, 1.0, "nm")]
    tem = s.metadata.Acquisition_instrument.TEM
    assert (tem.beam_energy, tem.convergence_angle, tem.camera_length, tem.microscope) == (300.0, 21.4, 115.0, "Titan")
    assert (tem.Detector.STEM.inner_angle, tem.Detector.STEM.outer_angle) == (80.0, 200.0)
    back = from_hyperspy(s)
    assert back.dims == ("y", "x")
    np.testing.assert_array_equal(back.values, img.values)
    np.testing.assert_allclose(back["x"].values, img["x"].values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(back["y"].values, img["y"].values, rtol=0, atol=1e-12)
    assert back.attrs["pixel_size_pm"] == pytest.approx(15.0, rel=1e-12)
    assert back.attrs["pixel_size_source"] == "signal"
    for k, v in TEM_ATTRS.items():
        assert back.attrs[k] == v, k
    assert back.attrs["title"] == "HAADF"


def test_stem_analysis_signal_in_maps_out():
    data, _, _ = perovskite_image((96, 96), a_px=12.0, dose=500, seed=1)
    s = _calibrated_signal(data)
    from nanodomains.stem.analyze import analyze_image

    res = analyze_image(s, composition=False)  # the signal is the input: no file, no pixel_size_pm
    rec = res.record
    assert rec.pixel_size_pm == pytest.approx(40.0) and rec.pixel_size_source == "signal"
    assert res.image.attrs["beam_energy_kev"] == 200.0 and res.image.attrs["detector_inner_mrad"] == 68.0
    # 12 px x 40 pm = 480 pm: the calibration went through
    assert rec.lattice.pseudocubic_pm.value == pytest.approx(480.0, rel=0.005)
    maps = to_hyperspy(res)
    assert {"exx", "eyy", "exy", "rotation", "domain", "registry", "lattice_local"} <= set(maps)
    for name in ("exx", "domain", "lattice_local"):
        m = maps[name]
        assert isinstance(m, hs.signals.Signal2D)
        assert _signal_axes(m) == [("x", pytest.approx(0.04), pytest.approx(1.5), "nm"),
                                   ("y", pytest.approx(0.04), pytest.approx(0.5), "nm")]
    assert maps["domain"].data.dtype == np.int16 and set(np.unique(maps["domain"].data)) <= {0, 1}
    assert maps["lattice_local"].metadata.Signal.quantity == "lattice_local (pm)"
    assert maps["lattice_local"].original_metadata.nanodomains.units == "pm"
    # the rotation map keeps its unit and stays an image in nm
    assert maps["rotation"].original_metadata.nanodomains.units == "rad"


def test_gpa_on_lazy_signal():
    data, _, _ = perovskite_image((96, 96), a_px=12.0, dose=500, seed=2)
    lazy = _calibrated_signal(data).as_lazy()
    assert lazy._lazy
    image = load_image(lazy)
    np.testing.assert_array_equal(image.values, data)
    from nanodomains.stem.gpa import gpa

    res = gpa(image)
    assert np.mean(res.lattice.lattice_pm) == pytest.approx(480.0, rel=0.005)
    exx = to_hyperspy(res, lazy=True)["exx"]
    assert exx._lazy and _signal_axes(exx)[0][1:] == (pytest.approx(0.04), pytest.approx(1.5), "nm")


def test_pl_movie_signal_in_analysis_out_energy_axis():
    movie, truth = fig4_like(seed=0, n_frames=40)
    s = to_hyperspy(movie, spectral_axis="energy")
    assert isinstance(s, hs.signals.Signal1D)
    e_ax = s.axes_manager.signal_axes[0]
    assert (e_ax.name, e_ax.units, e_ax.is_uniform) == ("energy", "eV", False)
    np.testing.assert_allclose(e_ax.axis, np.sort(HC_EV_NM / movie["wavelength"].values), rtol=1e-12)
    t_ax = s.axes_manager.navigation_axes[0]
    assert (t_ax.name, t_ax.units, t_ax.scale, t_ax.offset) == ("time", "s", 1.0, 0.0)

    from nanodomains.spectroscopy.movie_analysis import analyze_movie

    analysis = analyze_movie(s, n_surrogates=99)  # the HyperSpy signal is the input
    assert analysis.record.frame_s == pytest.approx(1.0)
    assert sorted(e.kind for e in analysis.emitters) == sorted(e["kind"] for e in truth["emitters"])
    # the same result as from the DataArray: the eV axis came back to the same wavelengths
    direct = analyze_movie(movie, n_surrogates=99)
    np.testing.assert_allclose([e.center_nm.value for e in analysis.emitters],
                               [e.center_nm.value for e in direct.emitters], rtol=1e-9)
    np.testing.assert_allclose([e.fss_uev.value for e in analysis.emitters],
                               [e.fss_uev.value for e in direct.emitters], rtol=1e-6)

    out = to_hyperspy(analysis)  # the cosmic-ray-free movie, calibrated as the input
    w_ax = out.axes_manager.signal_axes[0]
    assert (w_ax.name, w_ax.units) == ("wavelength", "nm")
    assert (w_ax.offset, w_ax.scale) == (pytest.approx(640.0), pytest.approx(0.02))
    assert [(a.name, a.units, a.scale) for a in out.axes_manager.navigation_axes] == [("time", "s", 1.0)]
    out_e = to_hyperspy(analysis, spectral_axis="energy")
    np.testing.assert_allclose(out_e.axes_manager.signal_axes[0].axis, e_ax.axis, rtol=1e-12)
    assert out_e.axes_manager.signal_axes[0].units == "eV"


def test_movie_units_converted_and_untimed_axis_said():
    from nanodomains.spectroscopy.io import load_movie

    e_mev = np.linspace(1950.0, 1850.0, 64)  # decreasing energy, in meV
    counts = np.random.default_rng(3).poisson(100, (5, 64)).astype(float)
    s = hs.signals.Signal1D(counts, axes=[
        {"name": "t", "units": "ms", "scale": 250.0, "offset": 0.0, "size": 5, "navigate": True},
        {"name": "E", "units": "meV", "axis": e_mev, "navigate": False}])
    mv = load_movie(s)
    np.testing.assert_allclose(mv["time"].values, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(mv["wavelength"].values, np.sort(HC_EV_NM / (e_mev * 1e-3)), rtol=1e-12)
    np.testing.assert_array_equal(mv.values, counts)  # energy axis was already ascending in wavelength
    assert "lambda = hc/E" in mv.attrs["wavelength_source"] and "'t' (ms)" in mv.attrs["time_source"]
    s.axes_manager.navigation_axes[0].units = "<undefined>"
    untimed = load_movie(s)
    assert untimed.attrs["time_units"] == "frame" and "no time unit" in untimed.attrs["time_source"]
    again = load_movie(to_hyperspy(untimed))  # an untimed movie stays untimed through a round trip
    assert again.attrs["time_units"] == "frame"
    np.testing.assert_array_equal(again["time"].values, np.arange(5.0))


@pytest.mark.parametrize("time_unit, energy_unit, bad", [("ms", "MeV", "'MeV'"), ("Ms", "meV", "'Ms'")])
def test_mega_is_not_read_as_milli(time_unit, energy_unit, bad):
    """Units match without case, but "MeV" / "Ms" are mega: refused, not read 1e9 x off."""
    from nanodomains.spectroscopy.io import load_movie

    s = hs.signals.Signal1D(np.ones((3, 32)), axes=[
        {"name": "t", "units": time_unit, "scale": 1.0, "offset": 0.0, "size": 3, "navigate": True},
        {"name": "E", "units": energy_unit, "scale": -1.0, "offset": 1950.0, "size": 32, "navigate": False}])
    with pytest.raises(CalibrationError, match=f"{bad}, which is mega-, not milli-"):
        load_movie(s)
    s.axes_manager.navigation_axes[0].units = "MS"  # all capitals: old files' milliseconds
    s.axes_manager.signal_axes[0].units = "MEV"
    assert load_movie(s)["time"].values[1] == pytest.approx(1e-3)


def test_pixel_size_argument_overrides_and_stack_is_averaged():
    data = np.random.default_rng(4).random((3, 16, 16))
    s = hs.signals.Signal2D(data)  # uncalibrated stack
    image = load_image(s, pixel_size_pm=20.0)
    assert image.dims == ("y", "x") and image.attrs["frames_averaged"] == 3
    assert image.attrs["pixel_size_source"] == "argument" and "pixel_size_signal_pm" not in image.attrs
    np.testing.assert_allclose(image.values, data.mean(axis=0))
    calibrated = _calibrated_signal(data[0])
    over = from_hyperspy(calibrated, pixel_size_pm=20.0)
    assert over.attrs["pixel_size_pm"] == 20.0 and over.attrs["pixel_size_signal_pm"] == pytest.approx(40.0)


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore:Loading old file version")  # HyperSpy on this 1.x file, not ours
def test_real_hspy_signal_gives_the_loaders_pixel_size():
    signal = hs.load(str(PTO))
    assert isinstance(signal, hs.signals.Signal2D)
    own = load_image(PTO)
    via = load_image(signal)
    # README: 1312 x 224 px, 15.0 pm/px in the file, 300 kV
    assert via.shape == own.shape == (224, 1312)
    assert via.attrs["pixel_size_pm"] == own.attrs["pixel_size_pm"] == pytest.approx(15.0, abs=0.005)
    assert via.attrs["beam_energy_kev"] == own.attrs["beam_energy_kev"] == 300.0
    np.testing.assert_allclose(via["x"].values, own["x"].values, rtol=1e-12)
    np.testing.assert_allclose(via["y"].values, own["y"].values, rtol=1e-12)
    np.testing.assert_array_equal(via.values, own.values)
    from nanodomains.stem.gpa import find_lattice

    # README: at the file's 15.0 pm/px the lattice measures ~363 pm
    assert np.mean(find_lattice(via).lattice_pm) == pytest.approx(363.0, rel=0.01)


# ---------------------------------------------------------------- files


def test_tiff_opens_in_tifffile_with_imagej_calibration(tmp_path):
    import tifffile

    img = image_from_array(np.random.default_rng(5).random((24, 32)), 15.0, **TEM_ATTRS)
    path = export(img, tmp_path / "image.tif")
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        page = tif.pages[0]
        num, den = page.tags["XResolution"].value
        ynum, yden = page.tags["YResolution"].value
        data = tif.asarray()
    assert meta["unit"] == "nm"
    assert den / num * 1e3 == pytest.approx(15.0, rel=1e-6) and yden / ynum * 1e3 == pytest.approx(15.0, rel=1e-6)
    np.testing.assert_allclose(data, img.values.astype(np.float32))
    assert load_image(path).attrs["pixel_size_pm"] == pytest.approx(15.0, rel=1e-6)
    from_signal = export(to_hyperspy(img), tmp_path / "signal.tif")  # a HyperSpy signal exports too
    with tifffile.TiffFile(from_signal) as tif:
        num, den = tif.pages[0].tags["XResolution"].value
        assert tif.imagej_metadata["unit"] == "nm" and den / num * 1e3 == pytest.approx(15.0, rel=1e-6)


def test_maps_tiff_is_a_labelled_imagej_hyperstack(tmp_path):
    import tifffile

    data, _, _ = perovskite_image((64, 64), a_px=12.0, seed=1)
    from nanodomains.stem.gpa import gpa

    ds = gpa(image_from_array(data, 40.0), reflections=((1, 0), (0, 1)), unwrap=False).to_dataset()
    path = export(ds, tmp_path / "gpa.tif")
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        num, den = tif.pages[0].tags["XResolution"].value
        stack = tif.asarray()
    assert meta["unit"] == "nm" and den / num * 1e3 == pytest.approx(40.0, rel=1e-6)
    labels = list(meta["Labels"])
    assert {"exx", "eyy", "exy", "rotation", "amplitude (10)", "phase (01)"} <= set(labels)
    assert stack.shape == (len(labels), 64, 64)
    np.testing.assert_allclose(stack[labels.index("exx")], ds["exx"].values.astype(np.float32))
    # HyperSpy (RosettaSciIO) opens the hyperstack with the maps' unit, pixel size and origin
    shifted = ds.assign_coords(y=ds["y"] + 0.5, x=ds["x"] + 1.5)
    s = hs.load(str(export(shifted, tmp_path / "shifted.tif")))
    assert s.data.shape == (len(labels), 64, 64)
    assert sorted((a.units, round(a.scale, 9), round(a.offset, 9)) for a in s.axes_manager.signal_axes) == [
        ("nm", 0.04, 0.5), ("nm", 0.04, 1.5)]
    assert [round(a.offset, 9) for a in sorted(s.axes_manager.signal_axes, key=lambda a: a.index_in_array)] == [
        0.5, 1.5]  # y, x in array order


def test_hspy_files_open_in_hyperspy(tmp_path):
    img = image_from_array(np.random.default_rng(6).random((16, 20)), 12.5, origin_nm=(0.3, 0.0), **TEM_ATTRS)
    s = hs.load(str(export(img, tmp_path / "image.hspy")))
    assert _signal_axes(s) == [("x", 0.0125, 0.0, "nm"), ("y", 0.0125, 0.3, "nm")]
    assert s.metadata.Acquisition_instrument.TEM.beam_energy == 300.0
    movie, _ = fig4_like(seed=1, n_frames=38)
    sm = hs.load(str(export(movie, tmp_path / "movie.hspy")))
    assert isinstance(sm, hs.signals.Signal1D) and sm.data.shape == (38, 1024)
    assert (sm.axes_manager.signal_axes[0].units, sm.axes_manager.navigation_axes[0].units) == ("nm", "s")
    from nanodomains.spectroscopy.io import load_movie

    back = load_movie(tmp_path / "movie.hspy")
    np.testing.assert_array_equal(back.values, movie.values)
    np.testing.assert_allclose(back["wavelength"].values, movie["wavelength"].values, rtol=1e-12)
    assert back.attrs["seed"] == 1  # the movie's attributes travel in original_metadata


def test_netcdf_opens_in_xarray(tmp_path):
    movie, _ = fig4_like(seed=2, n_frames=38)
    path = export(movie, tmp_path / "movie.nc")
    with xr.open_dataset(path) as ds:
        assert ds["counts"].dims == ("time", "wavelength")
        assert ds["wavelength"].attrs["units"] == "nm" and ds["time"].attrs["units"] == "s"
        np.testing.assert_array_equal(ds["counts"].values, movie.values)
    data, _, _ = perovskite_image((64, 64), a_px=12.0, seed=1)
    from nanodomains.stem.gpa import gpa

    res = gpa(image_from_array(data, 40.0), unwrap=False)
    with xr.open_dataset(export(res, tmp_path / "gpa.nc")) as ds:
        assert {"exx", "rotation", "amplitude"} <= set(ds.data_vars)
        assert ds["x"].attrs["units"] == "nm" and ds.attrs["pixel_size_pm"] == 40.0
    assert isinstance(read_output(tmp_path / "gpa.nc"), xr.Dataset)
    assert read_output(tmp_path / "movie.nc").dims == ("time", "wavelength")


def test_parquet_tables_open_in_pandas_and_pyarrow(tmp_path):
    import pyarrow.parquet as pq

    cols = pd.DataFrame({"y_nm": [0.1, 0.5, 0.9], "x_nm": [0.2, 0.2, 0.6], "type": ["Cs", "PbX", "X"],
                         "intensity": [1.0, 2.5, np.nan]})
    path = export(cols, tmp_path / "columns.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), cols)
    assert pq.read_table(path).column_names == list(cols.columns)
    movie, truth = fig4_like(seed=0, n_frames=40)
    from nanodomains.spectroscopy.movie_analysis import analyze_movie

    rec = analyze_movie(movie, n_surrogates=99).record
    path = export(rec, tmp_path / "emitters.parquet")
    table = pd.read_parquet(path)
    assert len(table) == len(rec.emitters) == len(truth["emitters"])
    np.testing.assert_allclose(table["center_nm"], [e.center_nm.value for e in rec.emitters])
    assert table["center_nm_stderr"].notna().all() and table["kind"].tolist() == [e.kind for e in rec.emitters]
    pd.testing.assert_frame_equal(table, records_table(rec), check_like=True)


def test_cli_export(tmp_path):
    from nanodomains.cli import main

    img = image_from_array(np.random.default_rng(7).random((16, 16)), 20.0)
    from nanodomains.stem.io import save_image

    save_image(img, tmp_path / "sim.nc")
    assert main(["export", str(tmp_path / "sim.nc"), str(tmp_path / "sim.tif")]) == 0
    import tifffile

    with tifffile.TiffFile(tmp_path / "sim.tif") as tif:
        assert tif.imagej_metadata["unit"] == "nm"
    pd.DataFrame({"x_nm": [1.0, 2.0]}).to_csv(tmp_path / "columns.csv", index=False)
    assert main(["export", str(tmp_path / "columns.csv"), str(tmp_path / "columns.parquet")]) == 0
    assert pd.read_parquet(tmp_path / "columns.parquet")["x_nm"].tolist() == [1.0, 2.0]
    assert main(["export", str(tmp_path / "sim.nc"), str(tmp_path / "sim.xyz")]) == 2
    assert not (tmp_path / "sim.xyz").exists()


# ---------------------------------------------------------------- bad input


def test_uncalibrated_signal_is_refused_naming_the_axis():
    s = hs.signals.Signal2D(np.ones((16, 16)))
    with pytest.raises(CalibrationError, match=r"signal axis 'y' \(unnamed\).*unit <undefined>.*never guessed"):
        from_hyperspy(s)
    from nanodomains.stem.analyze import analyze_image

    with pytest.raises(CalibrationError, match="no length calibration"):
        analyze_image(s, composition=False)
    s.axes_manager.signal_axes[1].name = "height"
    s.axes_manager.signal_axes[0].units = "nm"
    with pytest.raises(CalibrationError, match="'height'"):
        from_hyperspy(s)
    spec = hs.signals.Signal1D(np.ones((3, 32)))
    spec.axes_manager.signal_axes[0].units = "cm-1"
    from nanodomains.spectroscopy.io import load_movie

    with pytest.raises(CalibrationError, match="neither a wavelength.*cm-1"):
        load_movie(spec)


def test_wrong_dimensionality_is_refused():
    from nanodomains.spectroscopy.io import load_movie
    from nanodomains.stem.analyze import analyze_image

    stack = _calibrated_signal(np.ones((3, 16, 16)))
    assert from_hyperspy(stack).dims == ("frame", "y", "x")
    with pytest.raises(InputError, match="needs a 2-D image"):
        analyze_image(from_hyperspy(stack))
    with pytest.raises(InputError, match="2 navigation axes"):
        from_hyperspy(_calibrated_signal(np.ones((2, 3, 16, 16))))
    with pytest.raises(InputError, match="a PL movie is 2-D"):
        load_movie(hs.signals.Signal1D(np.ones((2, 3, 32))))
    with pytest.raises(InputError, match="an image needs a Signal2D"):
        load_image(hs.signals.Signal1D(np.ones((4, 32))))
    with pytest.raises(InputError, match="a PL movie needs a Signal1D"):
        load_movie(stack)


def test_empty_and_complex_signals_are_refused():
    from nanodomains.spectroscopy.io import load_movie

    with pytest.raises(InputError, match=r"empty signal \(data shape \(0, 16, 16\)\)"):
        from_hyperspy(_calibrated_signal(np.ones((0, 16, 16))))  # was a 0-frame stack
    with pytest.raises(InputError, match=r"empty signal"):
        load_image(_calibrated_signal(np.ones((0, 16, 16))))  # was "256 NaN/inf pixel(s)" (mean of 0 frames)
    spec = hs.signals.Signal1D(np.ones((0, 32)))
    spec.axes_manager.signal_axes[0].units = "nm"
    with pytest.raises(InputError, match="empty signal"):
        from_hyperspy(spec)  # was a (0, 32) movie
    spec = hs.signals.Signal1D(np.ones((3, 32), dtype=complex))
    spec.axes_manager.signal_axes[0].units = "nm"
    with pytest.raises(InputError, match="dtype complex128; a PL movie holds real-valued counts"):
        load_movie(spec)  # was the real part, with only a ComplexWarning


def test_nan_data_is_refused():
    data = np.ones((16, 16))
    data[3, 4] = np.nan
    with pytest.raises(InputError, match="1 NaN/inf pixel"):
        from_hyperspy(_calibrated_signal(data))
    from nanodomains.spectroscopy.io import load_movie

    movie, _ = fig4_like(seed=0, n_frames=40)
    s = to_hyperspy(movie)
    s.data[7, 100] = np.nan
    with pytest.raises(InputError, match=r"1 frame\(s\) contain NaN/inf"):
        load_movie(s)
    with pytest.warns(UserWarning, match="dropping 1 frame"):
        dropped = load_movie(s, bad_frames="drop")
    assert dropped.attrs["dropped_frames"] == [7] and dropped.sizes["time"] == 39


def test_unknown_suffix_and_wrong_format_for_the_object(tmp_path):
    img = image_from_array(np.ones((16, 16)), 10.0)
    with pytest.raises(InputError, match=r"unknown export format '\.png'"):
        export(img, tmp_path / "image.png")
    movie, _ = fig4_like(seed=0, n_frames=38)
    with pytest.raises(InputError, match="a PL movie goes to .nc or .hspy"):
        export(movie, tmp_path / "movie.tif")
    with pytest.raises(InputError, match="Parquet holds tables"):
        export(img, tmp_path / "image.parquet")
    data, _, _ = perovskite_image((64, 64), a_px=12.0, seed=1)
    from nanodomains.stem.gpa import gpa

    with pytest.raises(InputError, match="holds one signal"):
        export(gpa(image_from_array(data, 40.0), unwrap=False), tmp_path / "gpa.hspy")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left


def test_untimed_movie_calibrated_in_hyperspy_becomes_timed():
    """A stored time unit ('frame') never overrides the axis: times in s are labelled s."""
    from nanodomains.spectroscopy.io import load_movie, movie_from_arrays

    movie, _ = fig4_like(seed=0, n_frames=5)
    untimed = movie_from_arrays(movie.values, movie["wavelength"].values)
    s = to_hyperspy(untimed)
    nav = s.axes_manager.navigation_axes[0]
    assert nav.units == "frame"
    nav.units, nav.scale = "ms", 100.0  # the user calibrates the frames: 0.1 s each
    for back in (from_hyperspy(s), load_movie(s)):
        np.testing.assert_allclose(back["time"].values, [0.0, 0.1, 0.2, 0.3, 0.4])
        assert back.attrs["time_units"] == "s" and back["time"].attrs["units"] == "s"
        assert "'time' (ms)" in back.attrs["time_source"]


def test_pixel_size_that_disagrees_with_the_coordinates_is_refused(tmp_path):
    """image[::2, ::2] keeps pixel_size_pm = 15 while its coordinates step 30 pm: no file or
    signal is written with the stale attribute."""
    img = image_from_array(np.random.default_rng(8).random((64, 64)), 15.0)
    sub = img[::2, ::2]
    assert sub.attrs["pixel_size_pm"] == 15.0
    with pytest.raises(CalibrationError, match=r"pixel_size_pm = 15 but its 'y' coordinates step by 30 pm"):
        to_hyperspy(sub)
    for suffix in (".tif", ".nc", ".hspy"):
        with pytest.raises(CalibrationError, match="step by 30 pm"):
            export(sub, tmp_path / f"sub{suffix}")
    assert not list(tmp_path.iterdir())
    fixed = sub.assign_attrs(pixel_size_pm=30.0)  # the user's fix, as the message says
    assert to_hyperspy(fixed).axes_manager["x"].scale == pytest.approx(0.03)
    assert load_image(export(fixed, tmp_path / "sub.tif")).attrs["pixel_size_pm"] == pytest.approx(30.0, rel=1e-6)
    plain = sub.copy()
    del plain.attrs["pixel_size_pm"]  # no attribute: the coordinates give it
    assert load_image(export(plain, tmp_path / "plain.tif")).attrs["pixel_size_pm"] == pytest.approx(30.0, rel=1e-6)
