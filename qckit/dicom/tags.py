"""The DICOM attributes the index reads, with the kind of value each normalises to.

Units are DICOM's own (PS3.3): times in ms, angles in degrees, lengths in mm, field strength in tesla, pixel
bandwidth in Hz/pixel, tube current in mA, exposure in mAs, CTDIvol in mGy.
"""

from __future__ import annotations

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

# Tag and VR of each attribute, from the DICOM data dictionary (PS3.6) as pydicom ships it; written out so that
# indexing does not import pydicom (0.08 s of every `qckit scan`). Tested equal to pydicom's dictionary.
DICTIONARY: dict[str, tuple[int, str]] = {
    "Modality": (0x00080060, "CS"),
    "Manufacturer": (0x00080070, "LO"),
    "ManufacturerModelName": (0x00081090, "LO"),
    "SoftwareVersions": (0x00181020, "LO"),
    "DeviceSerialNumber": (0x00181000, "LO"),
    "StationName": (0x00081010, "SH"),
    "StudyDate": (0x00080020, "DA"),
    "SeriesDescription": (0x0008103E, "LO"),
    "ProtocolName": (0x00181030, "LO"),
    "SeriesNumber": (0x00200011, "IS"),
    "ImageType": (0x00080008, "CS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "SliceThickness": (0x00180050, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "MagneticFieldStrength": (0x00180087, "DS"),
    "RepetitionTime": (0x00180080, "DS"),
    "EchoTime": (0x00180081, "DS"),
    "EchoNumbers": (0x00180086, "IS"),
    "InversionTime": (0x00180082, "DS"),
    "FlipAngle": (0x00181314, "DS"),
    "PixelBandwidth": (0x00180095, "DS"),
    "NumberOfAverages": (0x00180083, "DS"),
    "EchoTrainLength": (0x00180091, "IS"),
    "ScanningSequence": (0x00180020, "CS"),
    "SequenceVariant": (0x00180021, "CS"),
    "MRAcquisitionType": (0x00180023, "CS"),
    "InPlanePhaseEncodingDirection": (0x00181312, "CS"),
    "ReceiveCoilName": (0x00181250, "SH"),
    "ParallelReductionFactorInPlane": (0x00189069, "FD"),
    "SequenceName": (0x00180024, "SH"),
    "DiffusionBValue": (0x00189087, "FD"),
    "KVP": (0x00180060, "DS"),
    "XRayTubeCurrent": (0x00181151, "IS"),
    "Exposure": (0x00181152, "IS"),
    "ConvolutionKernel": (0x00181210, "SH"),
    "ReconstructionDiameter": (0x00181100, "DS"),
    "SpiralPitchFactor": (0x00189311, "FD"),
    "CTDIvol": (0x00189345, "FD"),
    "SOPClassUID": (0x00080016, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SpecificCharacterSet": (0x00080005, "CS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "SamplesPerPixel": (0x00280002, "US"),
    "BitsAllocated": (0x00280100, "US"),
    "PatientName": (0x00100010, "PN"),
    "PatientID": (0x00100020, "LO"),
    "PatientBirthDate": (0x00100030, "DA"),
    "IssuerOfPatientID": (0x00100021, "LO"),
}

TAG_TO_KEYWORD: dict[int, str] = {DICTIONARY[k][0]: k for k in ALL_ATTRIBUTES}
KEYWORD_VR: dict[str, str] = {k: DICTIONARY[k][1] for k in ALL_ATTRIBUTES}
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
