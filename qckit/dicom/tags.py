"""The DICOM attributes the index reads, with the kind of value each normalises to.

Units are DICOM's own (PS3.3): times in ms, angles in degrees, lengths in mm, field strength in tesla, pixel
bandwidth in Hz/pixel, tube current in mA, exposure in mAs, CTDIvol in mGy.
"""

from __future__ import annotations

from pydicom.datadict import dictionary_VR, tag_for_keyword

# kind: "str" text (multi-valued text is kept joined with a backslash, as in DICOM), "float", "int",
# "floats" (a list of numbers), "identity" (hashed into the pseudonymous subject key, never output).
SERIES_ATTRIBUTES: dict[str, str] = {
    "Modality": "str",
    "Manufacturer": "str",
    "ManufacturerModelName": "str",
    "SoftwareVersions": "str",
    "DeviceSerialNumber": "str",
    "StationName": "str",
    "StudyDate": "str",
    "SeriesDescription": "str",
    "ProtocolName": "str",
    "SeriesNumber": "int",
    "ImageType": "str",
    "Rows": "int",
    "Columns": "int",
    "PixelSpacing": "floats",
    "SliceThickness": "float",
    "SpacingBetweenSlices": "float",
    # MR
    "MagneticFieldStrength": "float",
    "RepetitionTime": "float",
    "EchoTime": "float",
    "EchoNumbers": "int",
    "InversionTime": "float",
    "FlipAngle": "float",
    "PixelBandwidth": "float",
    "NumberOfAverages": "float",
    "EchoTrainLength": "int",
    "ScanningSequence": "str",
    "SequenceVariant": "str",
    "MRAcquisitionType": "str",
    "InPlanePhaseEncodingDirection": "str",
    "ReceiveCoilName": "str",
    "ParallelReductionFactorInPlane": "float",
    "SequenceName": "str",
    "DiffusionBValue": "float",
    # CT
    "KVP": "float",
    "XRayTubeCurrent": "float",
    "Exposure": "float",
    "ConvolutionKernel": "str",
    "ReconstructionDiameter": "float",
    "SpiralPitchFactor": "float",
    "CTDIvol": "float",
}

# Read per file but not reported as series columns.
FILE_ATTRIBUTES: dict[str, str] = {
    "SOPClassUID": "str",
    "SeriesInstanceUID": "str",
    "SOPInstanceUID": "str",
    "StudyInstanceUID": "str",
    "SpecificCharacterSet": "str",
    "ImagePositionPatient": "floats",
    "ImageOrientationPatient": "floats",
    "NumberOfFrames": "int",
    "InstanceNumber": "int",
    "SamplesPerPixel": "int",
    "BitsAllocated": "int",
    "PatientName": "identity",
    "PatientID": "identity",
    "PatientBirthDate": "identity",
    "IssuerOfPatientID": "identity",
}

ALL_ATTRIBUTES: dict[str, str] = {**SERIES_ATTRIBUTES, **FILE_ATTRIBUTES}

TAG_TO_KEYWORD: dict[int, str] = {int(tag_for_keyword(k)): k for k in ALL_ATTRIBUTES}  # type: ignore[arg-type]
KEYWORD_VR: dict[str, str] = {k: dictionary_VR(tag_for_keyword(k)) for k in ALL_ATTRIBUTES}
WANTED_TAGS: frozenset[int] = frozenset(TAG_TO_KEYWORD)
LAST_WANTED_GROUP = max(t >> 16 for t in WANTED_TAGS)

ENHANCED_SOP_CLASSES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image Storage
        "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
        "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
        "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
        "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET Image Storage
        "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET Image Storage
    }
)
MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"

# Attributes whose variation inside one acquisition is worth telling the user about.
CONSISTENCY_KEYS: tuple[str, ...] = (
    "RepetitionTime",
    "FlipAngle",
    "Rows",
    "Columns",
    "PixelSpacing",
    "SliceThickness",
    "PixelBandwidth",
    "KVP",
    "ConvolutionKernel",
    "Manufacturer",
    "ManufacturerModelName",
    "DeviceSerialNumber",
)
