"""migration subpackage."""
