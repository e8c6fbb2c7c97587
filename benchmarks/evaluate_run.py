"""Score a saved run with the offline metrics (FCD-5k and its floor, classes, class control, 2D modes).

    python benchmarks/evaluate_run.py assets/pretrained/mnist-cdcgan
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan_core.checkpoint import load_checkpoint  # noqa: E402
from quality import evaluate, machine  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    trainer = load_checkpoint(sys.argv[1], device="cpu")
    scores = {k: v for k, v in evaluate(trainer).items() if v}
    print(f"{sys.argv[1]} (step {trainer.step_count}): " + ", ".join(f"{k} {v}" for k, v in scores.items()))
    print(f"machine: {machine()}")
