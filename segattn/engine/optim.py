"""The optimiser and its schedule as the recipes set them: SGD (or AdamW) and poly decay per iteration."""
import torch


def poly_lambda(max_iters: int, power: float, base_lr: float = 1.0, min_lr: float = 0.0, to_last: bool = False):
    """The base lr's factor at iteration ``it``: ``(1 - it/T)^power``, floored at ``min_lr``.

    ``T`` is ``max_iters`` (the lr would reach the floor one past the last
    iteration, as the official CCNet code's ``lr_poly``), or ``max_iters - 1``
    with ``to_last`` (it reaches the floor at the last, as mmengine's ``PolyLR``).
    """
    span = max(max_iters - 1, 1) if to_last else max_iters
    if not min_lr:
        return lambda it: (1 - min(it, span) / span) ** power
    floor = min_lr / base_lr
    return lambda it: (1 - floor) * (1 - min(it, span) / span) ** power + floor


def build_optimizer(model, cfg):
    """SGD with momentum (or AdamW, ``train.optimizer``); ``train.weight_decay_all`` false leaves norms and biases
    (rank < 2) undecayed."""
    t = cfg.train
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if t.weight_decay_all or p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": t.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr)
    return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum)


def build_scheduler(optimizer, cfg):
    """Poly decay per iteration from ``train.lr`` to ``train.min_lr`` (:func:`poly_lambda`) over ``train.poly_iters``
    (``max_iters`` unless set: mmsegmentation's OCRNet 80k config decays over 40k, then trains at the floor)."""
    t = cfg.train
    factor = poly_lambda(t.poly_iters or t.max_iters, t.poly_power, t.lr, t.min_lr, t.poly_to_last)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def gradients_finite(model) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    # a float64 sum is NaN or inf exactly when an element is (float32 values cannot overflow it): one cheap pass
    return bool(torch.isfinite(torch.stack([g.sum(dtype=torch.float64) for g in grads]).sum())) if grads else True
