"""The course map: one lesson per idea, in order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Lesson:
    stem: str
    title: str
    idea: str


LESSONS = (
    Lesson("00_start_here", "Start here", "how the course works; small per-layer gains compound over depth"),
    Lesson("01_residual_connections", "Residual connections", "why an identity path keeps deep signals alive"),
    Lesson("02_hyper_connections", "Hyper-Connections", "n streams and learned mixing; why they can explode"),
    Lesson("03_doubly_stochastic", "Doubly stochastic matrices", "the Birkhoff polytope keeps products bounded"),
    Lesson("04_sinkhorn_knopp", "Sinkhorn–Knopp", "projecting onto doubly stochastic matrices, and its numerics"),
    Lesson("05_mhc_layer", "The mHC layer", "the paper's full formulation, HC vs mHC over 64 layers"),
    Lesson("06_fused_kernels", "Fused kernels in Triton", "counting bytes, the bandwidth floor, fused kernels"),
    Lesson("07_memory_recomputation", "Memory, recomputation, scheduling", "what n streams cost and how to pay less"),
    Lesson("08_training_run", "The training run", "residual vs HC vs mHC on a small GPT"),
)


def lessons_dir() -> Path:
    """The ``lessons/`` folder of a source checkout."""
    return Path(__file__).resolve().parent.parent / "lessons"


def course_map() -> list[dict[str, str]]:
    """Rows for the map: number, title, idea, and whether the notebook is in this checkout."""
    here = lessons_dir()
    return [
        {
            "lesson": lesson.stem[:2],
            "title": lesson.title,
            "idea": lesson.idea,
            "notebook": f"{lesson.stem}.ipynb" if (here / f"{lesson.stem}.ipynb").exists() else "(not yet written)",
        }
        for lesson in LESSONS
    ]
