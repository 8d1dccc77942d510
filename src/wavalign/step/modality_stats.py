"""Per-modality views of per-token quantities (entropy, KL), for logging: does a run collapse the speech tokens'
distribution while the text tokens stay healthy, or drift from the reference on one modality only?"""

from __future__ import annotations

from torch import Tensor

from wavalign.policy.masks import ModalityMasks
from wavalign.step.losses import k3_kl


def modality_token_means(values: Tensor, masks: ModalityMasks) -> dict[str, Tensor]:
    """{'text': sum m v / sum m over the batch's text tokens, 'speech': the same over its speech tokens}, detached;
    a modality with no token in the batch is left out (no 0/0)."""
    out = {}
    for name, mask in (("text", masks.text), ("speech", masks.speech)):
        n = mask.sum()
        if float(n) > 0:
            out[name] = (values.detach() * mask).sum() / n
    return out


def modality_logs(
    masks: ModalityMasks, entropy: Tensor | None = None, logp: Tensor | None = None, ref_logp: Tensor | None = None
) -> dict[str, Tensor]:
    """policy/entropy_{text,speech} from per-token entropies, and loss/kl_{text,speech} (the k3 estimator, as the
    loss uses) when reference log-probs exist (beta > 0); an absent input logs nothing."""
    out: dict[str, Tensor] = {}
    if entropy is not None:
        out.update({f"policy/entropy_{k}": v for k, v in modality_token_means(entropy, masks).items()})
    if logp is not None and ref_logp is not None:
        kl = k3_kl(logp.detach(), ref_logp)
        out.update({f"loss/kl_{k}": v for k, v in modality_token_means(kl, masks).items()})
    return out
