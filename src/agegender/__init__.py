"""agegender: lightweight joint age-group and gender recognition from face images."""

__version__ = "0.1.0"

