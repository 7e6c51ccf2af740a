"""agegender: lightweight joint age-group and gender recognition from face images.

``from agegender import Predictor`` loads nothing heavy: torch is never imported by prediction.
"""

__version__ = "0.1.0"
__all__ = ["FaceResult", "Predictor", "__version__"]


def __getattr__(name: str):
    if name in ("Predictor", "FaceResult"):
        from agegender.inference import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'agegender' has no attribute {name!r}")
