"""PL movie I/O: real Andor SIF files, SPE 2.x / 3.0 written here from the documented
layout, CSV, netCDF round trip, and every kind of bad input."""

from __future__ import annotations

import struct
import warnings
from conftest import REALDATA

import numpy as np
import pytest
import xarray as xr

from nanodomains.errors import CalibrationError, FileFormatError, InputError
from nanodomains.spectroscopy.io import load_movie, movie_from_arrays, save_movie, validate_movie

REAL = REALDATA / "spectra"


# ---------------------------------------------------------------------------- SIF (real files)


@pytest.mark.realdata
def test_real_sif_kinetic_series_has_wavelength_axis():
    m = load_movie(REAL / "measurement.sif")
    assert m.dims == ("time", "wavelength")
    assert m.shape == (20, 1024)
    wl = m["wavelength"].values
    assert 529.9 < wl[0] < 530.1 and 592.7 < wl[-1] < 593.0
    assert np.all(np.diff(wl) > 0)
    # the calibration polynomial stored in the file, evaluated at pixel 1 and 1024
    c = [529.93812442523, 0.061715845778342, -2.28349748230931e-07, -5.07163560661353e-11]
    p = np.array([1.0, 1024.0])
    assert np.allclose(wl[[0, -1]], c[0] + c[1] * p + c[2] * p**2 + c[3] * p**3)
    # no per-frame time stamps in this file: kinetic cycle time, and it says so
    assert np.allclose(np.diff(m["time"].values), 3.0221)
    assert "CycleTime" in m.attrs["time_source"]
    assert m.values.max() > 40000  # the bright line near 550 nm


@pytest.mark.realdata
def test_real_sif_single_spectrum():
    m = load_movie(REAL / "raman1.sif")
    assert m.shape == (1, 1024)
    assert 405.1 < m["wavelength"].values[0] < 405.3
    assert m.attrs["time_source"] == "single frame"


@pytest.mark.realdata
@pytest.mark.parametrize("keep", [60000, 1500])
def test_truncated_sif_is_a_clear_error(tmp_path, keep):
    raw = (REAL / "measurement.sif").read_bytes()
    bad = tmp_path / "cut.sif"
    bad.write_bytes(raw[:keep])  # cut inside the frames, or inside the header
    with pytest.raises(FileFormatError, match="cut.sif"):
        load_movie(bad)


def test_not_a_sif(tmp_path):
    p = tmp_path / "x.sif"
    p.write_bytes(b"hello world, not andor" * 10)
    with pytest.raises(FileFormatError, match="not an Andor SIF"):
        load_movie(p)


# ---------------------------------------------------------------------------- SPE writers (documented layout)


def _spe_header(n_frames, width, datatype, version):
    """The 4100-byte header fields shared by SPE 2.x and 3.0 (one row per frame)."""
    hdr = bytearray(4100)
    struct.pack_into("<H", hdr, 42, width)
    struct.pack_into("<h", hdr, 108, datatype)
    struct.pack_into("<H", hdr, 656, 1)
    struct.pack_into("<i", hdr, 1446, n_frames)
    struct.pack_into("<f", hdr, 1992, version)
    struct.pack_into("<h", hdr, 4098, 0x5555)
    return hdr


def _spe3_bytes(frames_u16, sensor_wl, *, x0, binning, stamps, resolution=1_000_000):
    T, W = frames_u16.shape
    hdr = _spe_header(T, W, 3, 3.0)
    fbytes = 2 * W
    stride = fbytes + 8
    body = b"".join(frames_u16[i].astype("<u2").tobytes() + struct.pack("<q", int(stamps[i])) for i in range(T))
    xml_off = 4100 + len(body)
    struct.pack_into("<Q", hdr, 678, xml_off)
    wl_txt = ",".join(f"{v:.6f}" for v in sensor_wl)
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<SpeFormat version="3.0" xmlns="http://www.princetoninstruments.com/spe/2009">'
        f'<DataFormat><DataBlock type="Frame" count="{T}" pixelFormat="MonochromeUnsigned16" size="{fbytes}" stride="{stride}">'
        f'<DataBlock type="Region" count="1" pixelFormat="MonochromeUnsigned16" size="{fbytes}" stride="{fbytes}" '
        f'width="{W}" height="1" calibrations="1"/></DataBlock></DataFormat>'
        '<MetaFormat><MetaBlock type="TimeStamp">'
        f'<TimeStamp event="ExposureStarted" type="Int64" bitDepth="64" resolution="{resolution}"/>'
        "</MetaBlock></MetaFormat>"
        f'<Calibrations><SensorMapping id="1" x="{x0}" y="0" width="{W * binning}" height="1" xBinning="{binning}" yBinning="1"/>'
        f'<WavelengthMapping id="2"><Wavelength xml:space="preserve">{wl_txt}</Wavelength></WavelengthMapping>'
        f'<SensorInformation id="3" width="{len(sensor_wl)}" height="1"/></Calibrations></SpeFormat>'
    )
    return bytes(hdr) + body + xml.encode()


def _spe2_bytes(frames_f32, coeffs, *, exp_s=0.5, order=None):
    T, W = frames_f32.shape
    hdr = _spe_header(T, W, 0, 2.5)
    struct.pack_into("<f", hdr, 10, exp_s)
    struct.pack_into("<b", hdr, 3098, 1)
    struct.pack_into("<b", hdr, 3101, len(coeffs) - 1 if order is None else order)
    c6 = list(coeffs) + [0.0] * (6 - len(coeffs))
    struct.pack_into("<6d", hdr, 3263, *c6)
    return bytes(hdr) + frames_f32.astype("<f4").tobytes()


def test_spe3_frames_calibration_binning_and_timestamps(tmp_path):
    rng = np.random.default_rng(3)
    T, W, x0, b = 5, 100, 40, 2
    frames = rng.integers(0, 60000, (T, W)).astype(np.uint16)
    sensor = 600.0 + 0.01 * np.arange(400)
    stamps = np.array([0, 1_000_000, 2_000_500, 3_001_000, 4_000_000]) + 123456
    p = tmp_path / "m.spe"
    p.write_bytes(_spe3_bytes(frames, sensor, x0=x0, binning=b, stamps=stamps))
    m = load_movie(p)
    assert m.shape == (T, W)
    np.testing.assert_array_equal(m.values, frames.astype(float))
    expect = sensor[x0 : x0 + W * b].reshape(W, b).mean(1)
    np.testing.assert_allclose(m["wavelength"].values, expect)
    np.testing.assert_allclose(m["time"].values, (stamps - stamps[0]) / 1e6)
    assert m.attrs["format"] == "Princeton SPE 3.0"


def test_spe3_truncated_and_missing_calibration(tmp_path):
    frames = np.ones((4, 50), np.uint16)
    raw = _spe3_bytes(frames, 600 + 0.01 * np.arange(50), x0=0, binning=1, stamps=np.arange(4))
    p = tmp_path / "cut.spe"
    p.write_bytes(raw[:3000])
    with pytest.raises(FileFormatError, match="shorter than the 4100-byte"):
        load_movie(p)
    # footer offset points past the end: data truncated
    p.write_bytes(raw[:4100 + 100])
    with pytest.raises(FileFormatError, match="outside the file"):
        load_movie(p)
    nocal = raw.replace(b"<Wavelength xml", b"<Nothing xml").replace(b"</Wavelength>", b"</Nothing>")
    p.write_bytes(nocal)
    with pytest.raises(CalibrationError, match="WavelengthMapping"):
        load_movie(p)


def test_spe2_polynomial_calibration(tmp_path):
    T, W = 3, 64
    frames = np.arange(T * W, dtype=np.float32).reshape(T, W)
    coeffs = [640.0, 0.02, 1e-6]
    p = tmp_path / "old.SPE"
    p.write_bytes(_spe2_bytes(frames, coeffs, exp_s=0.5))
    m = load_movie(p)
    px = np.arange(1, W + 1)
    np.testing.assert_allclose(m["wavelength"].values, coeffs[0] + coeffs[1] * px + coeffs[2] * px**2)
    np.testing.assert_array_equal(m.values, frames)
    np.testing.assert_allclose(m["time"].values, [0, 0.5, 1.0])
    assert "exp_sec" in m.attrs["time_source"]
    # pixel origin 0 for files written by IDL-style software
    m0 = load_movie(p, spe2_pixel_origin=0)
    np.testing.assert_allclose(m0["wavelength"].values[0], coeffs[0])


def test_spe2_bad_inputs(tmp_path):
    frames = np.ones((3, 32), np.float32)
    p = tmp_path / "a.spe"
    p.write_bytes(_spe2_bytes(frames, [640.0, 0.0], order=0))
    with pytest.raises(CalibrationError, match="no wavelength calibration"):
        load_movie(p)
    p.write_bytes(_spe2_bytes(frames, [640.0, 0.02])[:-10])
    with pytest.raises(FileFormatError, match="truncated SPE"):
        load_movie(p)


# ---------------------------------------------------------------------------- CSV


def test_csv_with_time_column(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("time_s,650.0,650.1,650.2\n0.0,1,2,3\n1.5,4,5,6\n")
    m = load_movie(p)
    np.testing.assert_allclose(m["time"].values, [0, 1.5])
    np.testing.assert_allclose(m["wavelength"].values, [650.0, 650.1, 650.2])
    np.testing.assert_allclose(m.values, [[1, 2, 3], [4, 5, 6]])


def test_csv_without_time_column_warns_and_uses_frame_index(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("650.0\t650.1\t650.2\n1\t2\t3\n4\t5\t6\n7\t8\t9\n")
    with pytest.warns(UserWarning, match="frame index"):
        m = load_movie(p)
    np.testing.assert_allclose(m["time"].values, [0, 1, 2])
    assert m.attrs["time_units"] == "frame"
    m2 = load_movie(p, frame_time_s=0.25)
    np.testing.assert_allclose(m2["time"].values, [0, 0.25, 0.5])


def test_nan_frames_are_reported_by_index(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("t,650.0,650.1,650.2\n0,1,2,3\n1,4,nan,6\n2,7,8,9\n3,,1,1\n")
    with pytest.raises(InputError, match=r"2 frame\(s\) contain NaN.*1 \(t=1 s.*3 \(t=3 s"):
        load_movie(p)
    with pytest.warns(UserWarning, match="dropping 2 frame"):
        m = load_movie(p, bad_frames="drop")
    assert m.attrs["dropped_frames"] == [1, 3]
    np.testing.assert_allclose(m["time"].values, [0, 2])


def test_non_monotonic_and_decreasing_wavelength_axis(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("t,650.0,650.2,650.1\n0,1,2,3\n")
    with pytest.raises(CalibrationError, match="not strictly monotonic"):
        load_movie(p)
    p.write_text("t,650.2,650.1,650.0\n0,1,2,3\n")
    m = load_movie(p)
    np.testing.assert_allclose(m["wavelength"].values, [650.0, 650.1, 650.2])
    np.testing.assert_allclose(m.values, [[3, 2, 1]])
    assert m.attrs["wavelength_flipped"] == 1


def test_empty_movies(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("t,650.0,650.1\n")
    with pytest.raises(InputError, match="empty movie"):
        load_movie(p)
    p.write_text("")
    with pytest.raises(InputError, match="empty movie"):
        load_movie(p)
    with pytest.raises(InputError, match="empty movie"):
        movie_from_arrays(np.zeros((0, 5)), np.arange(5.0), np.zeros(0))


def test_bad_time_axis_and_mismatched_axes():
    with pytest.raises(InputError, match="not strictly increasing"):
        movie_from_arrays(np.ones((3, 4)), 500 + np.arange(4.0), [0, 1, 1])
    with pytest.raises(CalibrationError, match="3 values but the frames have 4"):
        movie_from_arrays(np.ones((3, 4)), 500 + np.arange(3.0), [0, 1, 2])


def test_wavelengths_must_be_positive_and_descending_axes_are_flipped():
    with pytest.raises(CalibrationError, match="non-positive"):
        movie_from_arrays(np.ones((2, 4)), np.array([-1.0, 0.0, 1.0, 2.0]), [0, 1])
    m = movie_from_arrays(np.arange(8.0).reshape(2, 4), np.array([603.0, 602.0, 601.0, 600.0]), [0, 1])
    assert m["wavelength"].values.tolist() == [600.0, 601.0, 602.0, 603.0]
    assert m.values[0].tolist() == [3.0, 2.0, 1.0, 0.0] and m.attrs["wavelength_flipped"] == 1


# ---------------------------------------------------------------------------- netCDF and misc


def test_netcdf_round_trip_and_simulator_style_file(tmp_path):
    rng = np.random.default_rng(0)
    m = movie_from_arrays(rng.poisson(100, (6, 30)), 640 + 0.02 * np.arange(30), np.arange(6) * 1.0,
                          attrs={"note": {"a": 1}})
    p = save_movie(m, tmp_path / "m.nc")
    back = load_movie(p)
    xr.testing.assert_allclose(back, m)
    assert back.attrs["note"] == '{"a": 1}'  # non-netCDF attributes are kept as JSON text
    m = back
    # a dataset with an extra variable, as a simulator may write
    ds = xr.Dataset({"counts": m, "dark": (("wavelength",), np.zeros(30))})
    ds.to_netcdf(tmp_path / "sim.nc", engine="h5netcdf")
    back2 = load_movie(tmp_path / "sim.nc")
    np.testing.assert_allclose(back2.values, m.values)
    ds2 = xr.Dataset({"a": m, "b": m * 2})
    ds2.to_netcdf(tmp_path / "two.nc", engine="h5netcdf")
    with pytest.raises(FileFormatError, match="several"):
        load_movie(tmp_path / "two.nc")
    np.testing.assert_allclose(load_movie(tmp_path / "two.nc", variable="b").values, 2 * m.values)


def test_unknown_or_missing_files(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        load_movie(tmp_path / "nope.sif")
    (tmp_path / "x.foo").write_text("1")
    with pytest.raises(FileFormatError, match="unknown movie format"):
        load_movie(tmp_path / "x.foo")
    (tmp_path / "bad.nc").write_bytes(b"not netcdf")
    with pytest.raises(FileFormatError, match="cannot open as netCDF"):
        load_movie(tmp_path / "bad.nc")


def test_validate_transposes_and_rejects_wrong_dims():
    da = xr.DataArray(np.ones((4, 3)), dims=("wavelength", "time"),
                      coords={"wavelength": np.arange(4.0) + 600, "time": np.arange(3.0)})
    assert validate_movie(da).dims == ("time", "wavelength")
    with pytest.raises(InputError, match="dims"):
        validate_movie(xr.DataArray(np.ones((2, 2)), dims=("y", "x")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_movie(da)  # a valid movie raises no warning
