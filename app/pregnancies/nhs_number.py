"""NHS number validation: 10 ASCII digits, the modulus 11 check, and the issuing range.

The check digit and the ranges come from the ``nhs-number`` package. Only numbers issued in
England, Wales and the Isle of Man are accepted (a woman booking in England has one); the synthetic
range used for test patients (9000000000 to 9999999999) is accepted only when settings allow it.
"""

from __future__ import annotations

import re

from nhs_number.constants import REGION_ENGLAND_WALES_IOM, REGION_SYNTHETIC
from nhs_number.validate import is_valid

_SHAPE = re.compile(r"^[0-9]{3} ?[0-9]{3} ?[0-9]{4}$")
EXAMPLE = "943 476 5919"


class InvalidNhsNumberError(ValueError):
    """The message says what is wrong and how to fix it; it never repeats the number."""


def normalise_nhs_number(value: str, *, allow_synthetic: bool) -> str:
    """Return the 10 digits of a valid NHS number, or raise :class:`InvalidNhsNumberError`."""
    text = value.strip()
    if not _SHAPE.fullmatch(text):
        raise InvalidNhsNumberError(
            f"must be 10 digits, optionally spaced 3-3-4 (for example {EXAMPLE})"
        )
    digits = text.replace(" ", "")
    if not is_valid(digits):
        raise InvalidNhsNumberError(
            "fails the NHS number check digit: check each digit against the record"
        )
    if REGION_SYNTHETIC.contains_number(digits):
        if allow_synthetic:
            return digits
        raise InvalidNhsNumberError(
            "is in the synthetic test range (starting with 9), which is refused here; "
            "use the woman's real NHS number (or set EXHALE_ALLOW_SYNTHETIC_NHS_NUMBERS "
            "on a test system)"
        )
    if not REGION_ENGLAND_WALES_IOM.contains_number(digits) or len(set(digits)) == 1:
        raise InvalidNhsNumberError(
            "is not in a range issued by NHS England, Wales or the Isle of Man: "
            "check the number against the woman's record"
        )
    return digits
