"""nanodomains.stem.io: calibrated image reading/writing and bad input."""

from __future__ import annotations

import shutil
from conftest import REALDATA

import numpy as np
import pytest

from nanodomains.errors import CalibrationError, FileFormatError, InputError
from nanodomains.stem.io import image_from_array, load_image, register_stack, save_image

REAL = REALDATA / "stem" / "pto_sro_haadf.hspy"


def _image(seed=0, shape=(64, 80)):
    rng = np.random.default_rng(seed)
    return image_from_array(rng.random(shape) * 100, 12.5, origin_nm=(1.0, 2.0), beam_energy_kev=300.0, title="t")


@pytest.mark.parametrize("ext", ["nc", "tif", "hspy"])
def test_save_load_round_trip_keeps_calibration(tmp_path, ext):
    da = _image()
    p = save_image(da, tmp_path / f"img.{ext}")
    back = load_image(p)
    assert back.dims == ("y", "x")
    assert back.attrs["pixel_size_pm"] == pytest.approx(12.5, rel=1e-6)
    assert back.attrs["pixel_size_source"] == "file"
    assert float(back.x[0]) == pytest.approx(2.0) and float(back.y[0]) == pytest.approx(1.0)
    assert float(back.x[1] - back.x[0]) == pytest.approx(0.0125, rel=1e-6)
    tol = 1e-4 if ext == "tif" else 0  # tif is float32
    np.testing.assert_allclose(back.values, da.values, rtol=tol, atol=tol * 100)
    if ext != "tif":
        assert back.attrs["beam_energy_kev"] == 300.0


def test_tif_is_imagej_calibrated(tmp_path):
    import tifffile

    p = save_image(_image(), tmp_path / "img.tif")
    with tifffile.TiffFile(p) as tf:
        assert tf.is_imagej
        assert tf.imagej_metadata["unit"] == "nm"
        num, den = tf.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(0.0125, rel=1e-6)  # nm per px
        # ImageJ's origin in pixels: x = (px - xorigin) * width, so the first pixel sits at (1, 2) nm
        assert -tf.imagej_metadata["xorigin"] * 0.0125 == pytest.approx(2.0)
        assert -tf.imagej_metadata["yorigin"] * 0.0125 == pytest.approx(1.0)


def test_npy_needs_pixel_size(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.ones((32, 32)))
    with pytest.raises(CalibrationError, match="pixel_size_pm"):
        load_image(p)
    da = load_image(p, pixel_size_pm=20.0)
    assert da.attrs["pixel_size_pm"] == 20.0 and da.attrs["pixel_size_source"] == "argument"


def test_uncalibrated_tif_needs_pixel_size(tmp_path):
    import tifffile

    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, np.ones((32, 32), np.float32))
    with pytest.raises(CalibrationError, match="plain.tif"):
        load_image(p)
    assert load_image(p, pixel_size_pm=7.0).attrs["pixel_size_pm"] == 7.0


@pytest.mark.parametrize(
    "data, match",
    [
        (np.ones(100), "1-D"),
        (np.ones((64, 64, 3)), "colour"),
        (np.where(np.eye(32) > 0, np.nan, 1.0), "NaN"),
        (np.ones((2, 3, 32, 32)), "4-D"),
        (np.ones((32, 32)) + 1j, "complex"),
        (np.ones((0, 32, 32)), "empty stack"),
    ],
)
def test_bad_arrays_rejected(tmp_path, data, match):
    p = tmp_path / "bad.npy"
    np.save(p, data)
    with pytest.raises(InputError, match=match):
        load_image(p, pixel_size_pm=10.0)


def test_sliced_image_with_a_stale_pixel_size_is_refused(tmp_path):
    """image[::2, ::2] keeps pixel_size_pm = 12.5 while its coordinates step by 25 pm: saving
    or analysing it would use half the true pixel size."""
    from nanodomains.stem.analyze import analyze_image

    sliced = _image()[::2, ::2]
    with pytest.raises(CalibrationError, match="coordinates step by 25 pm"):
        save_image(sliced, tmp_path / "sliced.tif")
    with pytest.raises(CalibrationError, match="pixel_size_pm = 12.5"):
        analyze_image(sliced)
    sliced.attrs["pixel_size_pm"] = 25.0
    assert save_image(sliced, tmp_path / "ok.nc").is_file()


def test_rgb_tif_rejected(tmp_path):
    import tifffile

    p = tmp_path / "rgb.tif"
    tifffile.imwrite(p, np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError, match="colour"):
        load_image(p, pixel_size_pm=10.0)


def test_missing_unknown_and_corrupt_files(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        load_image(tmp_path / "nope.dm4")
    (tmp_path / "x.xyz").write_text("hello")
    with pytest.raises(FileFormatError, match="unknown image format"):
        load_image(tmp_path / "x.xyz")
    (tmp_path / "junk.dm3").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(FileFormatError, match="junk.dm3"):
        load_image(tmp_path / "junk.dm3")


@pytest.mark.realdata
def test_truncated_real_hspy_is_a_format_error(tmp_path):
    p = tmp_path / "cut.hspy"
    p.write_bytes(REAL.read_bytes()[: REAL.stat().st_size // 3])
    with pytest.raises(FileFormatError, match="cut.hspy"):
        load_image(p)


@pytest.mark.realdata
def test_real_pto_sro_hspy_loads_with_calibration(tmp_path):
    da = load_image(REAL)
    assert da.shape == (224, 1312)
    assert da.attrs["pixel_size_pm"] == pytest.approx(15.0, abs=0.01)
    assert da.attrs["beam_energy_kev"] == 300.0
    assert da.attrs["source_file"].endswith("pto_sro_haadf.hspy")
    # an explicit pixel size overrides and the file value is kept for reference
    over = load_image(REAL, pixel_size_pm=16.0)
    assert over.attrs["pixel_size_pm"] == 16.0
    assert over.attrs["pixel_size_file_pm"] == pytest.approx(15.0, abs=0.01)
    shutil.copy(REAL, tmp_path / "copy.hspy")
    assert np.array_equal(load_image(tmp_path / "copy.hspy").values, da.values)


def test_stack_registration_recovers_shifts_and_averages(tmp_path):
    from scipy.ndimage import fourier_shift, gaussian_filter

    rng = np.random.default_rng(3)
    base = gaussian_filter(rng.random((64, 64)), 2.0, mode="wrap")  # band-limited
    shifts = np.array([[0.0, 0.0], [1.5, -2.25], [-3.0, 0.5]])
    frames = np.stack([np.fft.ifft2(fourier_shift(np.fft.fft2(base), s)).real for s in shifts])
    aligned, found = register_stack(frames, upsample_factor=20)
    np.testing.assert_allclose(found, -shifts, atol=0.06)
    np.testing.assert_allclose(aligned[2], base, atol=0.01)
    p = tmp_path / "stack.npy"
    np.save(p, frames)
    avg = load_image(p, pixel_size_pm=10.0, register=True)
    assert avg.dims == ("y", "x") and avg.attrs["frames_averaged"] == 3
    np.testing.assert_allclose(avg.values, base, atol=0.01)
    kept = load_image(p, pixel_size_pm=10.0, stack="keep")
    assert kept.dims == ("frame", "y", "x")


def test_tif_round_trip_keeps_acquisition_attrs(tmp_path):
    """Probe and detector attributes survive save_image -> load_image through TIFF,
    so a composition analysis of the file uses the same probe as of the array."""
    from nanodomains.stem.io import image_from_array, load_image, save_image

    da = image_from_array(np.random.default_rng(0).random((32, 40)), 20.0, beam_energy_kev=300.0,
                          convergence_semiangle_mrad=24.0, detector_inner_mrad=70.0, dose_e_per_a2=1e5,
                          drift_pm_per_line=[0.0, 0.5])
    save_image(da, tmp_path / "img.tif")
    back = load_image(tmp_path / "img.tif")
    for key in ("beam_energy_kev", "convergence_semiangle_mrad", "detector_inner_mrad", "dose_e_per_a2"):
        assert back.attrs[key] == pytest.approx(da.attrs[key])
    assert list(back.attrs["drift_pm_per_line"]) == [0.0, 0.5]
    assert back.attrs["pixel_size_pm"] == pytest.approx(20.0)


@pytest.mark.parametrize("ext", [".nc", ".tif", ".hspy"])
def test_probe_attrs_round_trip_through_files(tmp_path, ext):
    """One probe+detector object: to_attrs on the image, from_attrs after any file round trip."""
    from nanodomains.stem.probe import ProbeParameters

    probe = ProbeParameters(beam_energy_kev=200.0, convergence_semiangle_mrad=21.0, defocus_nm=2.0,
                            source_fwhm_pm=30.0, detector_mrad=(60.0, 180.0))
    da = image_from_array(np.random.default_rng(0).random((32, 40)), 20.0, **probe.to_attrs())
    back = load_image(save_image(da, tmp_path / f"img{ext}"))
    assert ProbeParameters.from_attrs(back.attrs) == probe


def test_probe_from_attrs_reads_older_names_and_refuses_missing():
    from nanodomains.errors import FileFormatError
    from nanodomains.stem.probe import ProbeParameters

    old_table = {"energy_kev": 300.0, "semiangle_mrad": 24.0, "detector_inner_mrad": 70.0,
                 "detector_outer_mrad": 190.0}
    p = ProbeParameters.from_attrs(old_table)
    assert (p.beam_energy_kev, p.convergence_semiangle_mrad, p.detector_mrad) == (300.0, 24.0, (70.0, 190.0))
    assert p.source_fwhm_pm == 0.0  # absent: no source blur assumed, never the 40 pm default
    assert ProbeParameters.from_attrs(old_table, detector=False).detector_mrad is None
    rsciio = {"beam_energy_kev": 300.0, "convergence_angle_mrad": 30.0}
    assert ProbeParameters.from_attrs(rsciio).convergence_semiangle_mrad == 30.0
    with pytest.raises(FileFormatError, match="beam_energy_kev"):
        ProbeParameters.from_attrs({"convergence_semiangle_mrad": 24.0})


def _hspy_with_unit(path, unit, scale):
    """A 32 x 32 HyperSpy file whose two axes carry ``scale`` in ``unit`` (None: no unit)."""
    from rsciio.hspy import file_writer

    axes = [{"name": n, "size": 32, "scale": scale, "offset": 0.0, "units": unit, "navigate": False}
            for n in ("y", "x")]
    if unit is None:
        for a in axes:
            del a["units"]
    file_writer(str(path), {"data": np.ones((32, 32), np.float32), "axes": axes,
                            "metadata": {"General": {"title": "u"}, "Signal": {"signal_type": "", "record_by": "image"}},
                            "original_metadata": {}, "tmp_parameters": {}, "attributes": {"_lazy": False},
                            "learning_results": {}, "models": {}, "package_info": {"name": "t", "version": "0"}},
                show_progressbar=False)
    return path


@pytest.mark.parametrize(
    "unit, scale, pm",
    [("nm", 0.0125, 12.5), ("n_m", 0.0122465, 12.2465), ("NM", 0.01, 10.0), ("A", 0.125, 12.5),
     ("Å", 0.125, 12.5), ("\u212b", 0.125, 12.5), ("angstrom", 0.125, 12.5), ("um", 1.25e-5, 12.5),
     ("µm", 1.25e-5, 12.5), ("\u03bcm", 1.25e-5, 12.5), ("micron", 1.25e-5, 12.5), ("pm", 12.5, 12.5),
     ("m", 1.25e-11, 12.5), ("meters", 1.25e-11, 12.5)],
)
def test_every_unit_spelling_of_instruments_is_a_calibration(tmp_path, unit, scale, pm):
    da = load_image(_hspy_with_unit(tmp_path / "u.hspy", unit, scale))
    assert da.attrs["pixel_size_pm"] == pytest.approx(pm, rel=1e-9)
    assert da.attrs["pixel_size_source"] == "file"


@pytest.mark.parametrize("unit", [None, "", "px", "<undefined>"])
def test_scale_without_a_length_unit_asks_for_the_pixel_size(tmp_path, unit):
    p = _hspy_with_unit(tmp_path / "nounit.hspy", unit, 0.0093263)
    with pytest.raises(CalibrationError, match=r"no length calibration.*scale 0\.0093263.*--pixel-size-pm"):
        load_image(p)
    da = load_image(p, pixel_size_pm=9.3263)
    assert da.attrs["pixel_size_pm"] == 9.3263 and "_axes_without_length_unit" not in da.attrs


@pytest.mark.realdata
def test_real_ncem_emd_with_n_m_units_is_calibrated():
    da = load_image(REALDATA / "stem" / "ncem_STO_Acquisition_18.emd")
    assert da.attrs["pixel_size_pm"] == pytest.approx(12.2465, rel=1e-4)
    assert da.attrs["pixel_size_source"] == "file"
