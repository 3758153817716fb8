"""GeAR's training objectives: :class:`GearTrainingModule` (contrastive loss with momentum encoders and
feature queues, LM loss; the design is in ``gear.training.trainer``'s docstring)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gear.model.modeling import GearModel, Stack, mean_pool
from gear.training.distributed import all_gather, all_reduce_sum, world_size
from gear.training.precision import StepPrecision
from gear.training.settings import TrainSection

MASKED_LOGIT = -1e9  # logit of a queue slot not yet filled: exp() is exactly 0 in float32


# --------------------------------------------------------------------------------------------
# The training wrapper: momentum encoders, queues, temperature, losses
# --------------------------------------------------------------------------------------------
class GearTrainingModule(nn.Module):
    """GeAR plus what only training needs: momentum encoders, feature queues, temperature.

    Args:
        model: the GeAR model being trained (saved alone for inference).
        train: the ``train`` section.
        lm_loss: whether the variant trains L_LM (``train.variants.<v>.lm_loss``).
    """

    def __init__(self, model: GearModel, train: TrainSection, lm_loss: bool):
        super().__init__()
        cfg = model.config
        self.model = model
        self.lm_loss = lm_loss
        self.momentum = train.momentum
        self.cl_weight, self.lm_weight = train.cl_weight, train.lm_weight
        self.temperature_range = (train.temperature_min, train.temperature_max)
        # The momentum query encoder copies Eq's bi-encoder part only: the fusion blocks have no momentum twin.
        self.momentum_query_encoder = Stack(
            cfg, cfg.vocab_size, cfg.num_hidden_layers, cross_attention=False, causal=False
        )
        online_query = {
            k: v for k, v in model.query_encoder.state_dict().items() if ".cross_attention." not in k
        }
        self.momentum_query_encoder.load_state_dict(online_query, strict=True)
        self.momentum_document_encoder = copy.deepcopy(model.document_encoder)
        for module in (self.momentum_query_encoder, self.momentum_document_encoder):
            module.requires_grad_(False)
        self.temperature = nn.Parameter(torch.tensor(float(train.temperature_init)))
        size, dim = train.queue_size, cfg.hidden_size
        self.register_buffer("query_queue", torch.zeros(size, dim))
        self.register_buffer("document_queue", torch.zeros(size, dim))
        self.register_buffer("doc_key_queue", torch.full((size,), -1, dtype=torch.int64))
        self.queue_ptr = 0  # host-side, so that enqueueing never synchronises with the device
        if not lm_loss:  # GeAR_CL: fusion blocks, decoder and LM head are never used
            for name, param in model.named_parameters():
                if ".cross_attention." in name or name.startswith(("decoder.", "lm_head.")):
                    param.requires_grad_(False)
        self._momentum_pairs = self._pair_parameters()

    def _pair_parameters(self) -> tuple[list[Tensor], list[Tensor]]:
        momentum, online = [], []
        for twin, source in (
            (self.momentum_query_encoder, self.model.query_encoder),
            (self.momentum_document_encoder, self.model.document_encoder),
        ):
            params = dict(source.named_parameters())
            for name, param in twin.named_parameters():
                momentum.append(param)
                online.append(params[name])
        return momentum, online

    @torch.no_grad()
    def momentum_update(self, precision: StepPrecision | None = None) -> None:
        """``m <- mu m + (1 - mu) theta`` for every momentum parameter, in one fused call (on the
        float32 masters when ``precision`` keeps bf16 weights, gear.training.precision)."""
        momentum, online = self._momentum_pairs
        if precision is not None:
            precision.momentum_update(momentum, online, self.momentum)
        else:
            torch._foreach_lerp_(momentum, online, 1.0 - self.momentum)

    @torch.no_grad()
    def clamp_temperature(self) -> None:
        self.temperature.clamp_(*self.temperature_range)

    @torch.no_grad()
    def enqueue(self, query_keys: Tensor, document_keys: Tensor, doc_keys: Tensor) -> None:
        """Write a global batch of momentum features into the queues (FIFO, wrapping around)."""
        n = query_keys.shape[0]
        ptr = self.queue_ptr
        self.query_queue[ptr : ptr + n] = query_keys
        self.document_queue[ptr : ptr + n] = document_keys
        self.doc_key_queue[ptr : ptr + n] = doc_keys
        self.queue_ptr = (ptr + n) % self.query_queue.shape[0]

    def forward(
        self, batch: dict[str, Tensor], alpha: float
    ) -> tuple[Tensor, dict[str, Tensor], tuple[Tensor, ...]]:
        """One micro-batch.

        Args:
            batch: tensors of :class:`gear.training.triples.TripleCollator` on the model's device.
            alpha: soft-target weight of this step.

        Returns:
            loss to back-propagate (scaled for DDP, see the module docstring); detached statistics
            ``cl``, ``lm_sum``, ``lm_tokens`` (this process); the gathered momentum features and
            doc keys to enqueue once the step is done.
        """
        model = self.model
        q_ids, q_mask = batch["query_ids"], batch["query_mask"]
        d_ids, d_mask = batch["document_ids"], batch["document_mask"]
        doc_keys = batch["doc_keys"]
        query_states = model.query_encoder(q_ids, q_mask).hidden_states
        document_states = model.document_encoder(d_ids, d_mask).hidden_states
        with torch.no_grad():
            query_m = F.normalize(
                mean_pool(self.momentum_query_encoder(q_ids, q_mask).hidden_states, q_mask), dim=-1
            )
            document_m = F.normalize(
                mean_pool(self.momentum_document_encoder(d_ids, d_mask).hidden_states, d_mask), dim=-1
            )
            query_m_all, document_m_all, keys_all = (
                all_gather(query_m),
                all_gather(document_m),
                all_gather(doc_keys),
            )

        # Similarities in float32, outside autocast: logits divided by a temperature near 0.05
        # magnify bf16 rounding.
        with torch.autocast(device_type=q_ids.device.type, enabled=False):
            query_feat = F.normalize(mean_pool(query_states, q_mask), dim=-1)
            document_feat = F.normalize(mean_pool(document_states, d_mask), dim=-1)
            with torch.no_grad():
                query_bank = torch.cat([query_m_all, self.query_queue])  # (N + Q, H)
                document_bank = torch.cat([document_m_all, self.document_queue])
                key_bank = torch.cat([keys_all, self.doc_key_queue])
                empty = (key_bank < 0)[None, :]  # queue slots not filled yet
                positives = (doc_keys[:, None] == key_bank[None, :]).to(torch.float32)
                targets = positives / positives.sum(1, keepdim=True)
                temperature = self.temperature.detach()
                sim_q2d_m = (query_m @ document_bank.T / temperature).masked_fill(empty, MASKED_LOGIT)
                sim_d2q_m = (document_m @ query_bank.T / temperature).masked_fill(empty, MASKED_LOGIT)
                q2d_targets = alpha * sim_q2d_m.softmax(1) + (1 - alpha) * targets
                d2q_targets = alpha * sim_d2q_m.softmax(1) + (1 - alpha) * targets
            sim_q2d = (query_feat @ document_bank.T / self.temperature).masked_fill(empty, MASKED_LOGIT)
            sim_d2q = (document_feat @ query_bank.T / self.temperature).masked_fill(empty, MASKED_LOGIT)
            loss_q2d = -(F.log_softmax(sim_q2d, dim=1) * q2d_targets).sum(1).mean()
            loss_d2q = -(F.log_softmax(sim_d2q, dim=1) * d2q_targets).sum(1).mean()
            loss_cl = (loss_q2d + loss_d2q) / 2

        stats = {"cl": loss_cl.detach()}
        loss = self.cl_weight * loss_cl
        if self.lm_loss:
            lm_sum, lm_tokens = model.lm_loss_sum(
                q_ids, q_mask, document_states, d_mask, batch["target_input"], batch["target_labels"]
            )
            global_tokens = all_reduce_sum(lm_tokens).clamp(min=1.0)
            # DDP averages gradients over processes: x world size makes that average the gradient
            # of (global sum / global count).
            loss = loss + self.lm_weight * lm_sum * (world_size() / global_tokens)
            stats["lm_sum"], stats["lm_tokens"] = lm_sum.detach(), lm_tokens
        return loss, stats, (query_m_all, document_m_all, keys_all)
