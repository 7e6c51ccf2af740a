"""Prediction (torch-free): face detection and framing, the ONNX runtime, the Predictor, video and
output formats. Image decoding (agegender.preprocess) is shared with training."""
