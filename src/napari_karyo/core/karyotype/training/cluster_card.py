"""The model card of a trained cluster-type network: what it was trained on, how, and how it validated."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.infer.clusters import INPUT, TYPES
from napari_karyo.core.karyotype.training.cluster_augment import AUGMENTATION
from napari_karyo.core.karyotype.training.cluster_objects import SOME_CLUSTER, ObjectSet
from napari_karyo.core.training.harness import Run


def cluster_card(cfg, config: dict, net, data: ObjectSet, validation: dict, prog, train_minutes: float, run: Run,
                 base: dict | None = None) -> dict:  # fmt: skip
    """The model card of a trained cluster-type network (`base`: the card of the model it continued from)."""
    out = Path(cfg.out).with_suffix(".safetensors")
    card = {
        "architecture": clusters.ARCH,
        "config": config,
        "task": "type of a connected chromosome object: "
        + ", ".join(f"{i} {t}" for i, t in enumerate(TYPES)),
        "classes": {str(i): t for i, t in enumerate(TYPES)},
        "input": {
            "shape": [2, INPUT, INPUT],
            "preprocessing": "clusters.prepare_object: channel 0 grey bright-on-dark [0,1] (0 outside the mask), "
            f"channel 1 mask; chromosomes scaled to ~{clusters.TARGET_WIDTH:g} px wide (skeleton median width) "
            "unless the object would not fit, centred",
            "object_rule": f"union of chromosome masks bridging gaps <= {clusters.GAP} px (chessboard); overlap = "
            f">= {clusters.MIN_OVERLAP} shared pixels",
            "test_time": "mean log-probability over 4 flips",
        },
        "params": int(sum(p.numel() for p in net.parameters())),
        "data": {
            "train_objects": {
                src: np.bincount(data.y[data.source == src], minlength=SOME_CLUSTER + 1)[
                    : len(TYPES)
                ].tolist()
                for src in sources(cfg)
            },
            "synthetic": f"{cfg.synth_spreads} 'touching' spreads (synth.synthesize, 512x512, 40-60 chromosomes) "
            f"from crop-bank training cases ({cfg.per_source} crops per source), single/touching objects kept "
            f"with p={cfg.keep_single}",
            "bioimlab": "bioimlab_seg images whose number is not a multiple of 5; types from the polygons",
            "gband": "real gband_icbr training cells (not is_val_case): objects of the chromosomes import-karyogram "
            "placed from the lab's karyograms; types from those masks"
            if cfg.gband_imports
            else "not used",
            "threshold_masks": "25% of objects use a threshold mask of their crop instead of the annotation",
            "clusters_crops": (
                f"real G-band `clusters` crops of the training cases (not is_val_case('clusters', case)): "
                f"{int((data.y[data.source == 'clusters'] == clusters.SINGLE).sum())} single, "
                f"{int((data.y[data.source == 'clusters'] == SOME_CLUSTER).sum())} clusters of unrecorded type "
                f"(loss on p(not single)), {cfg.crops_share:.0%} of each batch"
                if cfg.crops
                else "not used (external test only)"
            ),
        },
        "validation": {
            "split": "bioimlab_seg images numbered 5k; synthetic spreads from crop-bank validation cases "
            f"({cfg.val_spreads} spreads, natural type rates)"
            + ("; gband: gband_icbr validation cells (is_val_case)" if cfg.gband_imports else "")
            + ("; clusters: the crops of the validation case(s) (is_val_case)" if cfg.crops else ""),
            **validation,
        },
        "training": {
            "stages": prog.stages,
            "batch": cfg.batch,
            "seed": cfg.seed,
            "sampling": "with replacement, weight per type ~ count^-0.5",
            "augmentation": AUGMENTATION,
            "optimizer": "AdamW wd 1e-4, per stage 100-step warm-up then cosine to 0, label smoothing 0.05",
            "minutes": round(train_minutes, 1),
            **run.environment(),
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("stages", "cache")},
            "history": prog.history,
        },
        "reproduce": f"napari-karyo train-clusters --data ../shared/data --synth-spreads {cfg.synth_spreads} "
        f"--keep-single {cfg.keep_single} --seed {cfg.seed} --threads {cfg.threads} --out {out.name} "
        + " ".join(f"--{s['name']}-steps {s['steps']}" for s in prog.stages)
        + (" --gband-imports IMPORTS (import-karyogram results of gband_icbr)" if cfg.gband_imports else "")
        + (f" --crops --crops-share {cfg.crops_share}" if cfg.crops else "")
        + (f" --init {cfg.init} (see fine_tuned_from)" if cfg.init else "")
        + (
            f"  (asked: --max-minutes {cfg.max_minutes}, which cut the steps to these)"
            if cfg.max_minutes
            else ""
        ),
    }
    if base is not None:
        card["fine_tuned_from"] = {"model": cfg.init, "sha256": base.get("sha256"), "made": base.get("made"),
                                   "reproduce": base.get("reproduce")}  # fmt: skip
    return card


def sources(cfg) -> tuple[str, ...]:
    """The training sources with full type labels."""
    return ("bioimlab", "synth", "gband") if cfg.gband_imports else ("bioimlab", "synth")
