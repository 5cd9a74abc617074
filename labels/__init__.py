"""Object labels on motion events (person, motorbike, car...), one implementation for both
sides: a camera board labels its events when it has the CPU for it, otherwise the cloud
labels the snapshots it receives.

- ``classes``: what may label an event, and its Vietnamese and English names (pure Python);
- ``settings``: the policy's knobs, part of both configs (pydantic only);
- ``model``: where the NanoDet model comes from (npm, pinned) and where it is kept;
- ``convert``: its TF.js graph to ONNX (needs ``onnx``, only when fetching);
- ``detector``: NanoDet on onnxruntime with its own decoding (numpy, Pillow);
- ``labeller``: the policy: whole picture plus zoomed views, class bars, the motion test.

The model and its runtime are the optional ``labels`` extra (onnxruntime, numpy, Pillow;
onnx for the conversion); nothing here imports them until labelling is switched on.
"""
