"""The distilled emotion student: Wav2Small trained on a frozen SER teacher's predictions.

No label is read: on every random crop the teacher (a checkpoint of `emotive train ser`)
predicts arousal/dominance/valence and, when the student has a category head, the emotion
probabilities; the student learns (1 - CCC) on A/D/V and cross-entropy against the
teacher's probabilities. `model.outputs` = 3 gives Wav2Small 2.0's A/D/V-only student;
3 + 8 adds 8 emotion logits after the A/D/V outputs (one Linear(338, 11) head).

    emotive train student --preset tiny --set teacher.ckpt=runs/ser-tiny data.data_dir=DATA_DIR
    emotive eval student --ckpt runs/student-tiny --data-dir DATA_DIR
"""

from __future__ import annotations

import dataclasses

from emotive.configs.augment import AugmentConfig
from emotive.configs.classifiers import Wav2SmallConfig
from emotive.configs.common import MeshConfig, OptimConfig, TrainConfig
from emotive.configs.ser import NUM_EMOTIONS, EmotionDataConfig
from emotive.errors import UserError


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """The frozen teacher: a `ser` run dir, its checkpoints/ or a step dir (required)."""

    ckpt: str = ""


@dataclasses.dataclass(frozen=True)
class StudentLossConfig:
    """Weights of (1 - CCC) against the teacher's A/D/V (mean over the three dimensions), of
    MSE against them (anchors the scale early on) and of soft cross-entropy against the
    teacher's category probabilities at `temperature` (used when the student has categories)."""

    ccc_weight: float = 1.0
    mse_weight: float = 1.0
    category_weight: float = 1.0
    temperature: float = 1.0

    def validate(self) -> None:
        if min(self.ccc_weight, self.mse_weight, self.category_weight) < 0:
            raise UserError("student loss weights must be >= 0")
        if self.temperature <= 0:
            raise UserError(f"loss.temperature must be positive, got {self.temperature}")


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    task: str = "student"
    model: Wav2SmallConfig = Wav2SmallConfig(outputs=3 + NUM_EMOTIONS)
    teacher: TeacherConfig = TeacherConfig()
    data: EmotionDataConfig = EmotionDataConfig()
    augment: AugmentConfig = AugmentConfig()  # training crops (the teacher hears them too)
    loss: StudentLossConfig = StudentLossConfig()
    optim: OptimConfig = OptimConfig()
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()

    @property
    def has_categories(self) -> bool:
        return self.model.outputs == 3 + NUM_EMOTIONS

    def validate(self) -> None:
        if self.model.outputs not in (3, 3 + NUM_EMOTIONS):
            raise UserError(f"model.outputs must be 3 (arousal, dominance, valence) or "
                            f"{3 + NUM_EMOTIONS} (plus {NUM_EMOTIONS} emotion logits), "
                            f"got {self.model.outputs}")


def tiny() -> StudentConfig:
    """A few hundred steps on the tiny corpus from a tiny teacher (tests use a few steps)."""
    return StudentConfig(
        data=EmotionDataConfig(crop_seconds=1.0),
        optim=OptimConfig(lr=5e-3, warmup_steps=20, weight_decay=0.0),
        train=TrainConfig(steps=200, batch_size=16, log_every=20, eval_every=100,
                          eval_batches=4, ckpt_every=100),
    )


def base() -> StudentConfig:
    """Wav2Small with a category head (13.3 K parameters) from a `ser` base teacher, sized
    for about 6 minutes on 2 idle CPU cores. 1 s crops: the student's 2-D convs over every
    2 ms frame make its training step cost about 16x the teacher's forward pass on a CPU, and
    the cost grows linearly with the crop."""
    return StudentConfig(
        data=EmotionDataConfig(crop_seconds=1.0),
        optim=OptimConfig(lr=5e-3, warmup_steps=50, weight_decay=0.0),
        train=TrainConfig(steps=800, batch_size=16, log_every=50, eval_every=200,
                          eval_batches=8, ckpt_every=200),
    )


PRESETS = {"tiny": tiny, "base": base}
