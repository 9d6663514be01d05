"""optics subpackage."""
