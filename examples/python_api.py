"""trafl from Python, notebook style: load the shipped base, sample, post-train a few steps
with TraFL while watching each step, evaluate the result. Only the public API (``import
trafl``) is used. Run from the repository root (about a minute on a laptop CPU):

    .venv/bin/python examples/python_api.py
"""

import trafl

# 1. the shipped tiny base and a few greedy samples (prompt format: "numbers -> target:")
model = trafl.load_model("models/countdown-base", device="cpu")
prompts = ["3 4 5 -> 17:", "2 6 4 -> 1:", "1 6 8 -> 48:"]
texts = trafl.generate(model, prompts, gen_length=16, temperature=0.0)
for prompt, text in zip(prompts, texts, strict=True):
    print(f"{prompt} {text}")

# 2. post-train with TraFL (configs/train_trafl.yaml), a callback sees every step's metrics
rewards = []


def watch(step: int, metrics: dict) -> None:
    rewards.append(metrics["reward"])
    print(f"step {step}: reward {metrics['reward']:.3f}  loss {metrics['loss']:.4f}")


result = trafl.train(
    "configs/train_trafl.yaml",
    steps=6,
    out_dir="runs/python-api",
    overwrite=True,
    device="cpu",
    callbacks=[watch],
)
print(f"{len(result.history)} steps logged; mean rollout reward {sum(rewards) / len(rewards):.3f}")

# 3. evaluate the trained policy (its run folder) and the base on the same problems
for name in ("models/countdown-base", "runs/python-api"):
    report = trafl.evaluate(
        model=name, num_problems=16, num_samples=8, gen_lengths=[16], device="cpu"
    )
    curve = report["lengths"]["16"]["pass_at_k"]  # k -> {"mean", "ci"} (bootstrap interval)
    print(name, "pass@k", {k: round(v["mean"], 3) for k, v in curve.items()})
