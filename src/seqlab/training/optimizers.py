"""The optimizer a config chooses: its learning rate (scheduled or not, per group of weights), clipping, weight
decay and weight averaging."""

from __future__ import annotations

import keras
from keras import ops

from seqlab.config import choices


@keras.saving.register_keras_serializable(package="seqlab")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of fine-tuning (Devlin et al. 2019): from 0 up to `peak` over `warmup_steps`, then down
    to 0 linearly at `total_steps`."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), max(int(total_steps), 1)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        up = self.peak * step / max(self.warmup_steps, 1)
        down = self.peak * ops.maximum(self.total_steps - step, 0.0) / max(self.total_steps - self.warmup_steps, 1)
        return ops.where(step < self.warmup_steps, up, down)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def with_lr_factors(kind: type) -> type:
    """`kind` (a Keras optimizer class) whose learning rate is multiplied by `lr_factor` for the weights in
    `scaled` (1 for the others): one learning rate for a pretrained backbone, another for the rest (a CRF's
    transitions learn far too slowly at a backbone's 3e-5). Weight decay follows the same factors."""

    class Scaled(kind):
        def __init__(self, *args, scaled=(), lr_factor=1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.scaled_ids, self.lr_factor = {id(v) for v in scaled}, float(lr_factor)

        def build(self, var_list):
            super().build(var_list)
            self._factors = [self.lr_factor if id(v) in self.scaled_ids else 1.0 for v in var_list]

        def factor(self, variable) -> float:
            return self._factors[self._get_variable_index(variable)]

        def update_step(self, gradient, variable, learning_rate):
            f = self.factor(variable)
            return super().update_step(gradient, variable, learning_rate if f == 1.0 else learning_rate * f)

        def _apply_weight_decay(self, variables):
            if self.weight_decay is None:
                return
            for variable in variables:
                if self._use_weight_decay(variable):
                    rate = ops.cast(self.learning_rate, variable.dtype) * self.factor(variable)
                    variable.assign(variable - variable * ops.cast(self.weight_decay, variable.dtype) * rate)

    Scaled.__name__ = Scaled.__qualname__ = f"{kind.__name__}WithLRFactors"
    return Scaled


def make_optimizer(name: str, lr, clipnorm: float | None, momentum: float = 0.0,
                   weight_decay: float | None = None, ema: float | None = None, scaled=(),
                   lr_factor: float = 1.0) -> keras.optimizers.Optimizer:
    """The `optimizer` config's choice (seqlab.config.choices.OPTIMIZERS) with its learning rate (a number or a
    schedule), clipping and weight decay (w -= lr * weight_decay * w each step: for plain SGD the same as
    PyTorch's L2 `weight_decay`). `ema`: also keep a moving average of the weights, a <- ema * a + (1 - ema) * w
    after every step (Keras' `use_ema`; seqlab.training.loop.WeightAverage scores it). `scaled`, `lr_factor`:
    weights whose learning rate is `lr_factor` times the others' (`with_lr_factors`)."""
    kind = choices.choose(choices.OPTIMIZERS, name, "optimizer.name").load()
    extra = {"momentum": momentum} if name == "sgd" else {}
    if ema:
        extra.update(use_ema=True, ema_momentum=ema)
    if name == "adamw" and not weight_decay:
        weight_decay = 0.01  # AdamW's own default in the fine-tuning recipes (Loshchilov & Hutter; BERT)
    if scaled and lr_factor != 1.0:
        kind = with_lr_factors(kind)
        extra.update(scaled=list(scaled), lr_factor=lr_factor)
    return kind(learning_rate=lr, clipnorm=clipnorm, weight_decay=weight_decay or None, **extra)


def inverse_time_decay(lr: float, decay: float) -> keras.callbacks.LearningRateScheduler:
    """Set the learning rate of epoch e (counted from 0) to lr / (1 + decay * e), as NCRF++ does."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, _: lr / (1.0 + decay * epoch))
