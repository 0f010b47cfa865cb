"""Foreign numeric postcodes (Australian 4-digit, US 5-digit ZIP) as valid UK-shaped postcodes.

The mapping is digit by digit, so an error in one digit changes one part of the UK postcode and the
matcher's postcode levels keep their meaning: the last digit becomes the unit ("same sector" when
only it differs), the one before it the sector digit ("same district"), the one before that the
district, and the leading digits the area letters. 2600 -> "C6 0AX", 90210 -> "KA2 1BX" (area
letters from "9" and "0"). Letters avoid nothing in particular: the shape must satisfy
:func:`core.identifiers.postcode_valid`, not name a real place. Anything but 3 to ``width`` ASCII digits
maps to "" (no postcode): a code with a letter in it is not read as some other code.
"""

from __future__ import annotations

_LETTERS = "ABCDEFGHJK"  # one letter per digit, for area letters and the unit's first letter


def uk_postcode(value: str, width: int) -> str:
    """``value``'s digits (left-padded with 0 to ``width``, as "800" is Darwin's 0800) as a UK postcode."""
    digits = str(value).strip()
    # Letters or punctuation in a numeric code (OCR noise: "0O0O0") leave it unreadable, as in the source.
    if not (digits.isascii() and digits.isdigit() and 3 <= len(digits) <= width):
        return ""
    digits = digits.zfill(width)
    area = "".join(_LETTERS[int(d)] for d in digits[:-3])
    district, sector, unit = digits[-3], digits[-2], digits[-1]
    return f"{area}{district} {sector}{_LETTERS[int(unit)]}X"
