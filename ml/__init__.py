"""Skin-lesion classifier: data, training, evaluation and inference.

Plain Python with no Django import. The web app talks to it only through
``ml.inference.Classifier``; TensorFlow is imported lazily where needed so
that importing ``ml`` stays cheap.
"""
