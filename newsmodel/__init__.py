"""The served model: the contract between training and serving.

Loading a version folder (a BERT ``save_pretrained`` folder or the linear model), ``predict``, encoding an
article the same way in training and serving, and the registry of versions in ``MODEL_DIR``. It imports no
Slack and no RQ, and never imports ``training``.
"""
