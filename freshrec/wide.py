"""The wide part's online Bayesian logistic regression: what each fresh row teaches the like-rate weights, kept.

The wide part (model.py) weighs the side inputs: logits of the user's and item's like-rates, their log counts,
the user's overall and recent rates. How much each says is a property of the stream (on MovieLens the recent rate
weighs about as much as the long-run rates; elsewhere less), and it drifts. A few gradient steps per cycle cannot
learn that from a few thousand rows, and refitting on all history every cycle costs a scan of it. So the wide
part is a Laplace-approximated posterior, carried from cycle to cycle:

  posterior = argmax  log-likelihood(fresh rows | weights, offset) - 1/2 (w - m)' decay * P (w - m)

with m and P the previous posterior's mean and precision, decay = exp(-rows / FRESHREC_WIDE_MEMORY_ROWS)
(exponential forgetting: old evidence fades as new rows arrive, so the weights follow a drifting stream), and the
offset the rest of the model's logit for the row (deep part and id term), which the gradient steps learn. The new
precision is decay * P plus the log-likelihood's curvature at the new mean. Every fresh row enters exactly once,
in the cycle that trains it; the posterior lives in each version's config (extra.wide_posterior) and the next
candidate continues from the newest attempt's, published or not, so a rejected candidate's rows still count.
A new lineage (cold start, or a rebase that changed the side inputs) starts from the hand-set prior: the weights
of logit(user rate) + logit(item rate) with precision WIDE_PRIOR_PRECISION per weight (in units of one row's
curvature), the bias free. L-BFGS over a handful of weights: well under a second for tens of thousands of rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WIDE_PRIOR_PRECISION = 10.0
PROBABILITY_CLIP = 1e-6  # scores are probabilities: their logits are recovered within this clip


@dataclass(frozen=True)
class WidePosterior:
    """Mean (the wide weights, then the bias) and precision matrix of the wide part's weights; `inputs`: the side
    columns the weights belong to, in order (features.side_columns); `rows`: the rows it has learned from,
    undecayed."""
    mean: np.ndarray
    precision: np.ndarray
    inputs: tuple[str, ...]
    rows: int = 0

    def to_json(self) -> dict:
        return {"inputs": list(self.inputs), "mean": [float(v) for v in self.mean],
                "precision": [[float(v) for v in row] for row in self.precision], "rows": int(self.rows)}

    @classmethod
    def from_json(cls, data: dict | None, inputs) -> WidePosterior | None:
        """None when absent or made for other side inputs (a version made before, or with other settings)."""
        if not data or list(data.get("inputs") or ()) != list(inputs):
            return None
        return cls(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["precision"], dtype=np.float64),
                   tuple(inputs), int(data.get("rows", 0)))

    def decayed(self, rows: int, memory_rows: float) -> WidePosterior:
        """The prior for `rows` new rows: the precision shrunk by exp(-rows / memory_rows)."""
        return WidePosterior(self.mean, self.precision * math.exp(-rows / memory_rows), self.inputs, self.rows)


def current(model, inputs, precision: float = WIDE_PRIOR_PRECISION) -> WidePosterior:
    """The model's wide weights (for the side columns `inputs`) as a prior with `precision` per weight and a free
    bias: for a new model, the hand-set like-rate sum; for a version made before the wide part was a posterior,
    its own weights."""
    mean = _mean(model)
    return WidePosterior(mean, np.diag([precision] * (len(mean) - 1) + [0.0]), tuple(inputs))


def _mean(model) -> np.ndarray:
    """The model's wide weights, then its bias (on the CPU, wherever the model is)."""
    return np.append(model.wide.weight.detach().double().cpu().numpy()[0], float(model.wide.bias.detach()[0]))


def _design(model, side: np.ndarray):
    """The side inputs as the wide part reads them, with a column of ones for the bias (CPU, float64)."""
    import torch

    x = model.side_inputs(torch.as_tensor(side, dtype=torch.float32)).double()
    return torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)


def set_weights(model, posterior: WidePosterior) -> None:
    import torch

    with torch.no_grad():
        model.wide.weight.copy_(torch.as_tensor(posterior.mean[:-1], dtype=model.wide.weight.dtype)[None, :])
        model.wide.bias.fill_(float(posterior.mean[-1]))


def residual_logits(model, side: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The logit of each score less the model's wide term on its side inputs: what the rest of the model (deep part,
    id term) says about the row, the offset of the wide part's fit."""
    import torch

    p = np.clip(np.asarray(scores, dtype=np.float64), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    with torch.no_grad():
        wide = (_design(model, side) @ torch.as_tensor(_mean(model))).numpy()
    return np.log(p / (1 - p)) - wide


def fit(model, side: np.ndarray, labels: np.ndarray, prior: WidePosterior,
        offset: np.ndarray | None = None) -> WidePosterior:
    """The maximum a posteriori wide weights given the rows (side inputs, labels, the rest of the model's logit as
    `offset`) and the prior; sets them in the model and returns the posterior (Laplace approximation)."""
    import torch

    x = _design(model, side)
    y = torch.as_tensor(labels, dtype=torch.float64)
    base = torch.zeros(len(y), dtype=torch.float64) if offset is None else torch.as_tensor(offset, dtype=torch.float64)
    mean = torch.as_tensor(prior.mean, dtype=torch.float64)
    precision = torch.as_tensor(prior.precision, dtype=torch.float64)
    theta = mean.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([theta], max_iter=200, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        gap = theta - mean
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(x @ theta + base, y, reduction="sum")
                + 0.5 * gap @ precision @ gap)
        loss.backward()
        return loss

    optimizer.step(objective)
    theta = theta.detach()
    p = torch.sigmoid(x @ theta + base)
    curvature = (x * (p * (1 - p))[:, None]).T @ x
    posterior = WidePosterior(theta.numpy().copy(), (precision + curvature).numpy(), prior.inputs,
                              prior.rows + len(y))
    set_weights(model, posterior)
    return posterior


def fit_examples(model, config, examples, prior: WidePosterior, offset: np.ndarray | None = None) -> WidePosterior:
    """fit() on example rows (features.build_examples): their side columns as the model reads them, their labels."""
    from freshrec.inference import _side

    return fit(model, _side(config, examples), examples["label"].to_numpy(dtype=np.float64), prior, offset)


def summary(posterior: WidePosterior, rows: int, prior: str) -> dict:
    """What a version's lineage records of its wide part (freshrec models show prints it)."""
    return {"rows": int(rows), "weights": [round(float(v), 4) for v in posterior.mean[:-1]],
            "bias": round(float(posterior.mean[-1]), 4), "prior": prior, "rows_total": int(posterior.rows)}


def running_posterior(engine, inputs) -> WidePosterior | None:
    """The newest attempt's posterior (published or not), if it was made for these side inputs."""
    from freshrec.sqlfiles import query

    with engine.connect() as conn:
        stored = conn.execute(query("wide_posterior")).scalar()
    return WidePosterior.from_json(stored, inputs)
