from pydicom.multival import MultiValue
from pydicom.valuerep import DSfloat

from qckit.dicom.values import decode_raw, normalise, orientation_label, to_floats, vendor


def test_gauss_is_converted_to_tesla():
    assert normalise("MagneticFieldStrength", "float", "15000") == 1.5
    assert normalise("MagneticFieldStrength", "float", "3") == 3.0


def test_numbers_from_text_and_multivalue():
    assert normalise("RepetitionTime", "float", "499.9998 ") == 499.9998
    assert normalise("RepetitionTime", "float", "") is None
    assert normalise("RepetitionTime", "float", "abc") is None
    assert normalise("RepetitionTime", "float", "nan") is None
    assert to_floats("0.97\\0.98") == [0.97, 0.98]
    assert to_floats(MultiValue(DSfloat, ["0.5", "0.25"])) == [0.5, 0.25]
    assert to_floats("0.5\\x") is None


def test_phase_encoding_is_normalised():
    assert normalise("InPlanePhaseEncodingDirection", "str", "COLUMN") == "COL"
    assert normalise("InPlanePhaseEncodingDirection", "str", "ROW ") == "ROW"


def test_orientation_labels():
    assert orientation_label([1, 0, 0, 0, 1, 0]) == "axial"
    assert orientation_label([0, 1, 0, 0, 0, -1]) == "sagittal"
    assert orientation_label([1, 0, 0, 0, 0, -1]) == "coronal"
    assert orientation_label([1, 0, 0, 1, 0, 0]) is None  # degenerate
    # 20 degrees oblique axial is still axial
    import math

    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    assert orientation_label([1, 0, 0, 0, c, s]) == "axial"


def test_vendor_names():
    assert vendor("GE MEDICAL SYSTEMS") == "GE"
    assert vendor("SIEMENS") == "Siemens"
    assert vendor("Siemens Healthineers") == "Siemens"
    assert vendor("Philips Medical Systems") == "Philips"
    assert vendor("TOSHIBA_MEC") == "Canon"
    assert vendor("Acme Imaging") == "Acme Imaging"
    assert vendor(None) is None


def test_decode_binary_vrs():
    assert decode_raw(b"\x00\x01", "US") == 256
    assert decode_raw(b"\x00\x01\x00\x02", "US") == [256, 512]
    assert decode_raw(b"", "US") is None
    assert decode_raw(b"1.2.3\x00", "UI") == "1.2.3"
