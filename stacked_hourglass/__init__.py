"""Stacked Hourglass Networks for Human Pose Estimation (Newell, Yang, Deng, ECCV 2016).

Importing the package registers its Keras classes (`StackedHourglass`, the layers of
`model/layers.py`) with Keras, now or when Keras is first imported, so that
`keras.saving.load_model("MODEL_DIR/model.keras")` works after `import stacked_hourglass`; the
package does not import Keras itself (see `registration.py`).
"""

from stacked_hourglass import registration

__version__ = "0.1.0"

registration.register_keras_objects()
