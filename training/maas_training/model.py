"""The networks: a Keras 3 MLP for feature rows (with no hidden layer, the linear / logistic baseline), an
Embedding -> LSTM model for token ids and its bag-of-words baseline, all sized by the config and trained with
early stopping on the validation loss. maas_training.candidates decides which of them a job trains.

TensorFlow is imported inside the functions, so importing this module (e.g. for `maas-train --help`)
stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maas_training.config import TrainingConfig, check_loss, default_loss

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of job logs


def configure_tensorflow(threads: int | None = None) -> None:
    """Limit TensorFlow's thread pools (must run before TensorFlow does any work; later calls are ignored)."""
    import tensorflow as tf

    if threads is None:
        threads = int(os.environ.get("MAAS_TF_THREADS", "0") or 0)
    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # TensorFlow already initialised in this process: keep its settings


def seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)  # python, numpy and tensorflow/keras generators


def build_model(n_features: int, task: str, n_classes: int, config: TrainingConfig, loss: str | None = None,
                hidden_units: list[int] | None = None) -> Any:
    """An MLP: Dense+relu layers (L2 kernel regularizer, optional dropout) and a task-shaped output layer.
    `hidden_units=[]` leaves the output layer alone: a linear (regression) or logistic (classifier) model."""
    import keras

    hidden_units = config.hidden_units if hidden_units is None else hidden_units
    keras.backend.clear_session()  # a job may train several models in one process: start from a clean slate
    seed_everything(config.seed)
    reg = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    inputs = keras.Input(shape=(n_features,), name="features")
    x = inputs
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=reg, name=f"dense_{i}")(x)
        if config.dropout > 0:
            x = keras.layers.Dropout(config.dropout, seed=config.seed + i, name=f"dropout_{i}")(x)
    outputs = _output_layer(task, n_classes, reg)(x)
    model = keras.Model(inputs, outputs, name="maas_mlp" if hidden_units else "maas_linear")
    model.compile(optimizer=make_optimizer(config), loss=make_loss(task, loss or config.loss))
    return model


def build_text_model(vocabulary_size: int, max_length: int, dtype: str, task: str, n_classes: int,
                     config: TrainingConfig, loss: str | None = None) -> Any:
    """Embedding(vocabulary_size, embed_dim) -> LSTM(lstm_units) -> (dropout) -> task-shaped output.

    Token ids come padded with 0 at the end. There is no `mask_zero` (an RNN after a masking
    Embedding, like a GRU, exports to a slow ONNX `Loop`; a plain LSTM exports to the fused ONNX
    `LSTM` op, see docs/training.md). Instead, with `lstm_reverse` the LSTM reads the ids last to first
    (`go_backwards`, an ONNX ReverseSequence + LSTM): the padding comes first and the final state
    is the one right after the words.
    """
    import keras

    keras.backend.clear_session()
    seed_everything(config.seed)
    reg = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    inputs = keras.Input(shape=(max_length,), dtype=dtype, name="tokens")
    x = keras.layers.Embedding(vocabulary_size, config.embed_dim, name="embedding")(inputs)
    x = keras.layers.LSTM(config.lstm_units, go_backwards=config.lstm_reverse, kernel_regularizer=reg, name="lstm")(x)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, seed=config.seed, name="dropout")(x)
    outputs = _output_layer(task, n_classes, reg)(x)
    model = keras.Model(inputs, outputs, name="maas_text_lstm")
    model.compile(optimizer=make_optimizer(config), loss=make_loss(task, loss or config.loss))
    return model


def build_bow_model(vocabulary_size: int, max_length: int, dtype: str, task: str, n_classes: int,
                    config: TrainingConfig, loss: str | None = None) -> Any:
    """Bag of words: the mean of the token ids' embeddings, then the task-shaped output layer.

    Both steps are linear, so this is a (rank embed_dim) logistic / linear model on the text's word
    frequencies; the padding id 0 counts as a word, which tells the model the text's length. It exports to
    ONNX Gather + ReduceMean + MatMul: no recurrence, cheap to train and to serve.
    """
    import keras

    keras.backend.clear_session()
    seed_everything(config.seed)
    reg = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    inputs = keras.Input(shape=(max_length,), dtype=dtype, name="tokens")
    x = keras.layers.Embedding(vocabulary_size, config.embed_dim, name="embedding")(inputs)
    x = keras.layers.GlobalAveragePooling1D(name="bag_of_words")(x)
    outputs = _output_layer(task, n_classes, reg)(x)
    model = keras.Model(inputs, outputs, name="maas_text_bow")
    model.compile(optimizer=make_optimizer(config), loss=make_loss(task, loss or config.loss))
    return model


def _output_layer(task: str, n_classes: int, reg: Any) -> Any:
    import keras

    if task == "binary":
        return keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=reg, name="output")
    if task == "multiclass":
        return keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="output")
    if task == "regression":
        return keras.layers.Dense(1, activation=None, kernel_regularizer=reg, name="output")
    raise ValueError(f"unknown task {task!r}")


def make_loss(task: str, loss: str | None) -> Any:
    """The Keras loss for a task. Targets: binary (n, 1) 0/1 floats; multiclass class indices, or
    one-hot rows for focal (Keras 3 has no sparse focal loss; `job._training_targets`); regression (n, 1)."""
    import keras

    loss = loss or default_loss(task)
    check_loss(loss, task)
    if task == "binary":
        return keras.losses.BinaryFocalCrossentropy() if loss == "focal" else keras.losses.BinaryCrossentropy()
    if task == "multiclass":
        return (keras.losses.CategoricalFocalCrossentropy() if loss == "focal"
                else keras.losses.SparseCategoricalCrossentropy())
    return {"mse": keras.losses.MeanSquaredError, "mae": keras.losses.MeanAbsoluteError,
            "huber": keras.losses.Huber}[loss]()


def make_optimizer(config: TrainingConfig) -> Any:
    import keras

    lr = config.learning_rate
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


@dataclass
class History:
    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epochs_run: int = 0
    best_epoch: int = 0  # 1-based; the weights kept are from this epoch

    def as_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "val_loss": self.val_loss, "epochs_run": self.epochs_run,
                "best_epoch": self.best_epoch}


def train(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    config: TrainingConfig,
    progress: Callable[[str], None] = print,
) -> History:
    """Fit the model; with a validation set and patience > 0, stop early and keep the best weights."""
    import keras

    has_val = x_val is not None and len(x_val) > 0
    monitor = "val_loss" if has_val else "loss"
    callbacks: list[Any] = []
    if config.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.early_stopping_patience, restore_best_weights=True))
    every = max(1, config.epochs // 5)

    def report(epoch: int, logs: dict[str, float] | None) -> None:
        if (epoch + 1) % every == 0 or epoch == 0:
            logs = logs or {}
            extra = f" val_loss={logs['val_loss']:.4f}" if "val_loss" in logs else ""
            progress(f"  epoch {epoch + 1}/{config.epochs} loss={logs.get('loss', float('nan')):.4f}{extra}")

    callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=report))
    seed_everything(config.seed)
    fit = model.fit(
        x_train, y_train,
        validation_data=(x_val, y_val) if has_val else None,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    hist = History(loss=[float(v) for v in fit.history.get("loss", [])],
                   val_loss=[float(v) for v in fit.history.get("val_loss", [])])
    hist.epochs_run = len(hist.loss)
    watched = hist.val_loss if has_val else hist.loss
    hist.best_epoch = int(np.argmin(watched)) + 1 if watched and config.early_stopping_patience > 0 else hist.epochs_run
    if not np.all(np.isfinite(hist.loss)):
        raise RuntimeError("training diverged (the loss became NaN or infinite); try a lower learning_rate")
    return hist


def with_output_scale(model: Any, scale: float, offset: float) -> Any:
    """The trained model followed by `y * scale + offset` (a regression trained on a standardised target),
    so the served model outputs values in the target's own units."""
    import keras

    source = model.inputs[0]
    inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype, name=source.name)
    outputs = keras.layers.Rescaling(scale=scale, offset=offset, name="target_scale")(model(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_scaled")


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """Keras outputs for a feature matrix or token ids, as float32 (n, outputs). `model(x)`: no progress
    bar, no batching quirks."""
    return np.asarray(model(x, training=False), dtype=np.float32).reshape(len(x), -1)
