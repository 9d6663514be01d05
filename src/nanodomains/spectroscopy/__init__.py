"""spectroscopy subpackage."""
