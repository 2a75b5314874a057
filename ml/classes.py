"""The condition codes the product knows, with their plain-English labels.

Short ISIC-style codes are used everywhere (model metadata, database, API).
The order is the canonical class order of trained models.
"""

CLASS_LABELS: dict[str, str] = {
    "akiec": "Actinic keratosis / Bowen's disease",
    "ad": "Atopic dermatitis (eczema)",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus (mole)",
    "scc": "Squamous cell carcinoma",
    "tinea": "Tinea / ringworm / candidiasis",
    "vasc": "Vascular lesion",
    "acne": "Acne",
    "psoriasis": "Psoriasis",
}

OTHER_CODE = "other"
OTHER_LABEL = "Another skin condition"

ALL_LABELS: dict[str, str] = {**CLASS_LABELS, OTHER_CODE: OTHER_LABEL}


def label_for(code: str) -> str:
    """The human label of a class code; unknown codes are shown as-is."""
    return ALL_LABELS.get(code, code)
