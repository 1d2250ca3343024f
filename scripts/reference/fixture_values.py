"""Formatting and comparison of fixture values."""


def format_float(value):
    """Format a float with repr precision, NaN as `nan` and infinity as `inf`."""
    return repr(float(value))


def format_optional(value):
    """Format an optional input, with None as an empty field."""
    return "" if value is None else format_float(value)


def relative_difference(value, reference):
    """Return |value - reference| / |reference|, or |value| when reference is 0."""
    scale = abs(reference)
    if scale == 0:
        return abs(value)
    return abs(value - reference) / scale
