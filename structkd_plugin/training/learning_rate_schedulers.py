"""Learning-rate schedules that step every batch, registered with tango's `LRScheduler`.

`linear_with_warmup` (AllenNLP's name): the rate rises linearly from 0 over the first
`warmup_steps` updates, then falls linearly to 0 at the end of the training budget, the usual
schedule for fine-tuning a transformer and a safe one for a BiLSTM trained on few updates:

    "learning_rate_scheduler": {"type": "linear_with_warmup", "warmup_steps": 0.05}

The trainer gives it `num_training_steps` (the run's budget: `num_steps`, or `num_epochs` times
the batches of an epoch) and steps it after every update; schedulers without
`step_every_batch` step once per epoch.
"""

import torch
from tango.integrations.torch import LRScheduler


@LRScheduler.register("linear_with_warmup")
class LinearWithWarmup(torch.optim.lr_scheduler.LambdaLR):
    """Linear warm-up, then linear decay to zero.

    # Parameters

    optimizer : `torch.optim.Optimizer`
        Given by the trainer.
    num_training_steps : `int`
        The number of updates of the whole run; given by the trainer.
    warmup_steps : `int | float`
        Updates of warm-up; a number below 1 is a fraction of `num_training_steps`.
    """

    step_every_batch = True

    def __init__(self, optimizer: torch.optim.Optimizer, num_training_steps: int, warmup_steps: float = 0.05) -> None:
        if num_training_steps < 1:
            raise ValueError(f"num_training_steps must be at least 1, not {num_training_steps}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, not {warmup_steps}")
        warmup = round(warmup_steps * num_training_steps) if warmup_steps < 1 else int(warmup_steps)
        self.num_training_steps, self.warmup = num_training_steps, warmup

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (num_training_steps - step) / max(1, num_training_steps - warmup))

        super().__init__(optimizer, factor)
