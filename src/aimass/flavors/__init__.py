"""Model flavors: how a file becomes a predictor (sklearn, ONNX, TorchScript, ...).

Must not import the API. Inspecting an upload never runs code from it unless
the upload was marked trusted.
"""
