"""Writing a model folder: the whole model, or only a LoRA adapter and the name of its base.

Either is an ordinary folder of the hub: a tiny model loads with transformers'
``AutoModel.from_pretrained(folder, trust_remote_code=True)`` (:mod:`trafl.models.hf_tiny`), an
adapter with ``peft.PeftModel.from_pretrained`` on its base (:mod:`trafl.models.lora`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save_policy(
    policy: Any, folder: str | Path, model_cfg: Any, state_dict: dict[str, Any] | None = None
) -> None:
    """Write ``policy`` to ``folder``: the adapter and its base's name for a LoRA policy, the
    whole model otherwise (``model_cfg`` is the run's :class:`trafl.models.ModelConfig`).
    ``state_dict``: the whole weights of a sharded policy, gathered (trafl.run.sharding)."""
    from trafl.models.loading import BASE_MODEL_FILE, base_model_record
    from trafl.models.lora import is_lora, save_adapter

    if is_lora(policy):
        record = base_model_record(model_cfg, policy)
        save_adapter(policy, folder, record["path"], state_dict=state_dict)
        (Path(folder) / BASE_MODEL_FILE).write_text(json.dumps(record, indent=1))
    elif state_dict is not None:
        policy.save_pretrained(folder, state_dict=state_dict)
    else:
        policy.save_pretrained(folder)
