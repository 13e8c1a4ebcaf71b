"""Rate-distortion training of an image codec, with the remedies GDN models need to stay stable.

Loss = R + lambda * D, with R in bits per pixel per band (bpppb) and D the MSE in normalised
units (SSL4EO-S12 standardisation, so D is comparable across bands). GDN models diverge easily at
high learning rates, so: linear warm-up, cosine decay, gradient-norm clipping, and GDN's own
reparametrised lower bounds (in `terracodec.layers.gdn`). The quantiles of entropy bottlenecks are
fitted by a separate optimiser on the auxiliary loss, as CompressAI does.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from terracodec.errors import InputError


@dataclass
class TrainConfig:
    #: One lambda, or one per quality level of a variable-rate model (lowest rate first).
    lmbda: float | list[float] = 10.0
    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-4
    aux_lr: float = 1e-3
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    clip_norm: float = 1.0
    log_every: int = 50
    checkpoint_every: int = 500
    seed: int = 0
    #: "rd": rate + lambda * MSE (everything trains). "autoencoder": MSE of
    #: synthesis(analysis(x) + uniform noise) only, which trains just the two transforms: a cheap
    #: way to lift their reconstruction floor (benchmarks/transform_floor.py) before RD training.
    objective: str = "rd"
    #: Stop (with a checkpoint) once a step ends after this many seconds of training, for a
    #: machine lent for a fixed time; the schedule still follows `steps` (None: no limit).
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        check_objective(self.objective, self.lmbda)


def check_objective(objective: str, lmbda: float | list[float]) -> None:
    """InputError unless `objective` is known and fits the lambdas (the autoencoder objective
    trains one model, not quality levels). `tec train` calls it before loading any data."""
    if objective not in ("rd", "autoencoder"):
        raise InputError(f"unknown training objective {objective!r} (rd or autoencoder)")
    if objective == "autoencoder" and isinstance(lmbda, (list, tuple)) and len(lmbda) > 1:
        raise InputError("the autoencoder objective trains one model, not quality levels: give one --lambda")


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)


def rate_distortion(out: dict, x: torch.Tensor,
                    weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(rate in bpppb, MSE in normalised units) of one forward pass; `weight` ([B, C, 1, 1], 0
    for a band the sample lacks: `terracodec.training.band_subsets`) restricts the MSE to the
    bands a sample has."""
    values = x.numel()  # B * C * H * W: bits per pixel per band
    bits = sum(-torch.log2(lk).sum() for lk in out["likelihoods"].values())
    if weight is None:
        return bits / values, torch.mean((out["x_hat"] - x) ** 2)
    weight = weight.expand_as(x)
    return bits / values, torch.sum(weight * (out["x_hat"] - x) ** 2) / weight.sum().clamp_min(1)


def autoencoder_mse(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MSE of `synthesis(analysis(x) + u)`, u ~ U(-1/2, 1/2) standing in for rounding (sequences
    `[B, T, C, H, W]` count as B*T frames); the entropy model takes no part."""
    if x.dim() == 5:
        x = x.flatten(0, 1)
    y = model.analysis(x)
    x_hat = model.synthesis(y + torch.empty_like(y).uniform_(-0.5, 0.5))
    return torch.mean((x_hat - x) ** 2)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio * lr`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def _split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    main, aux = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (aux if name.endswith("quantiles") else main).append(p)
    return main, aux


def train(
    model: nn.Module,
    batches: Iterator[torch.Tensor],
    cfg: TrainConfig,
    out_dir: Path,
    *,
    save: Callable[[nn.Module, Path], None],
    device: str = "cpu",
    resume: bool = False,
    progress: Callable[[int, dict], None] | None = None,
) -> TrainState:
    """Train in place; writes `out_dir/checkpoint.pt`-free checkpoints via `save` and a JSON log.

    `save(model, path_stem)` writes safetensors + JSON config (the model's own format), so a
    checkpoint is loadable without unpickling. Optimiser state is kept in `train_state.safetensors`.
    """
    from safetensors.torch import load_file, save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model.to(device).train()
    main_params, aux_params = _split_parameters(model)
    opt = torch.optim.Adam(main_params, lr=cfg.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr) if aux_params else None
    state = TrainState()
    log_path = out_dir / "train_log.json"

    if resume:
        opt_file = out_dir / "train_state.safetensors"
        if not (opt_file.exists() and log_path.exists()):
            raise InputError(f"nothing to resume in {out_dir}")
        _load_optimizer(opt, aux_opt, load_file(str(opt_file)))
        logged = json.loads(log_path.read_text())
        state.step, state.history = logged["step"], logged["history"]

    lambdas = list(cfg.lmbda) if isinstance(cfg.lmbda, (list, tuple)) else [float(cfg.lmbda)]
    autoencoder = cfg.objective == "autoencoder"
    started = time.perf_counter()
    window: list[tuple[float, float, float, int]] = []
    while state.step < cfg.steps:
        batch = next(batches)
        x, weight = batch if isinstance(batch, tuple) else (batch, None)
        x = x.to(device)
        weight = None if weight is None else weight.to(device)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, state.step)
        # Variable rate: the quality levels take turns, one per step (deterministic, balanced).
        q = state.step % len(lambdas)
        if autoencoder:
            mse = autoencoder_mse(model, x)
            rate, loss = torch.zeros(()), mse
        else:
            out = model(x, quality_index=q) if len(lambdas) > 1 else model(x)
            rate, mse = rate_distortion(out, x, weight)
            loss = rate + lambdas[q] * mse
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {state.step}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, cfg.clip_norm)
        opt.step()
        if aux_opt is not None and not autoencoder:
            aux_opt.zero_grad(set_to_none=True)
            aux = model.aux_loss()
            aux.backward()
            aux_opt.step()
        state.step += 1
        window.append((loss.item(), rate.item(), mse.item(), q))
        out_of_time = cfg.max_seconds is not None and time.perf_counter() - started >= cfg.max_seconds
        if state.step % cfg.log_every == 0 or state.step == cfg.steps or out_of_time:
            row = _log_row(window, lambdas)
            row.update(step=state.step, lr=opt.param_groups[0]["lr"],
                       seconds=round(time.perf_counter() - started, 1))
            window.clear()
            state.history.append(row)
            if progress:
                progress(state.step, row)
        if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps or out_of_time:
            model.eval()
            save(model, out_dir / "model")
            model.train()
            save_file(_optimizer_tensors(opt, aux_opt), str(out_dir / "train_state.safetensors"))
            log_path.write_text(
                json.dumps({"config": asdict(cfg), "step": state.step, "history": state.history}, indent=1)
            )
        if out_of_time:
            break
    return state


def _log_row(window: list[tuple[float, float, float, int]], lambdas: list[float]) -> dict:
    """Mean loss/rate/MSE since the last row; per quality level too for variable-rate training."""

    def mean(rows, i):
        return sum(r[i] for r in rows) / len(rows)

    row = {"loss": mean(window, 0), "bpppb": mean(window, 1), "mse": mean(window, 2)}
    if len(lambdas) > 1:
        row["levels"] = [
            {"lambda": lam, "bpppb": mean(rows, 1), "mse": mean(rows, 2)}
            for q, lam in enumerate(lambdas)
            if (rows := [r for r in window if r[3] == q])
        ]
    return row


def _optimizer_tensors(opt: torch.optim.Optimizer, aux_opt: torch.optim.Optimizer | None) -> dict:
    """Adam moments and step counts as plain tensors (safetensors cannot hold Python objects)."""
    out = {}
    for tag, o in (("main", opt), ("aux", aux_opt)):
        if o is None:
            continue
        for i, p in enumerate(p for g in o.param_groups for p in g["params"]):
            st = o.state.get(p)
            if not st:
                continue
            for key in ("exp_avg", "exp_avg_sq"):
                out[f"{tag}.{i}.{key}"] = st[key].detach().contiguous().cpu()
            out[f"{tag}.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float64).reshape(1)
    return out


def _load_optimizer(opt, aux_opt, tensors: dict) -> None:
    for tag, o in (("main", opt), ("aux", aux_opt)):
        if o is None:
            continue
        for i, p in enumerate(p for g in o.param_groups for p in g["params"]):
            if f"{tag}.{i}.exp_avg" not in tensors:
                continue
            o.state[p] = {
                "step": tensors[f"{tag}.{i}.step"].reshape(()).clone(),
                "exp_avg": tensors[f"{tag}.{i}.exp_avg"].to(p.device),
                "exp_avg_sq": tensors[f"{tag}.{i}.exp_avg_sq"].to(p.device),
            }
