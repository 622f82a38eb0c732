"""Learn: the principle, the paper, how to read every plot, swap schedules, a glossary, caveats.

A static page for a class (no store needed): works on an empty store and offline.
"""
from __future__ import annotations

import streamlit as st

import ui

PAPER_URL = "https://arxiv.org/abs/2302.11380"

st.title("Learn: the Anna Karenina Principle in deep learning")

st.markdown(
    """
> *"Happy families are all alike; every unhappy family is unhappy in its own way."*
> — Leo Tolstoy, **Anna Karenina** (1878)

**The principle, applied to neural networks.** Train many image classifiers on the same task.
Some of them generalize well (they do well on images they never saw): call them **happy**.
Others do not: call them **unhappy**. The Anna Karenina Principle (AKP) predicts that the happy
models end up *alike inside*: their internal representations of the same images are similar. The
unhappy ones each fail *in their own way*, so their representations are spread out, far from each other.

AKP Lab lets you test this: it stresses classifiers during training by **hot-swapping** their
activation and loss functions (a *swap schedule*), sorts the resulting runs into families, and measures
how spread out each family is.
"""
)

st.header("The paper")
st.markdown(
    f"""
Mahmoud, Antson, Choi, Shimmi, Roy. *Stress and Adaptation: Applying Anna Karenina Principle in Deep
Learning for Image Classification*. arXiv [2302.11380]({PAPER_URL}), 2023.

- **Task:** classify microscopy cells as cancer or non-cancer.
- **Stress:** during training, the activation function and the loss function are swapped for others
  (hot-swapping), at chosen epochs.
- **Theorem, in plain words:** as training goes on (in the asymptotic limit), the internal representations
  of models that generalize become similar to each other. There is essentially one way to be right, and
  many ways to be wrong.
- **Experiments:** models that generalized had more similar representations than models that did not.

The paper publishes neither its code, its data, its exact schedules nor its thresholds. Everything here
(the synthetic cell images, the schedules, the happy/unhappy rule, the similarity measure, the test) is
**our choice**, and the app lets you change it.
"""
)

st.header("How to read each plot")
st.markdown(
    """
**Test accuracy vs generalization gap** (Families). One dot per run. Right is better on unseen images; the
gap (train accuracy minus test accuracy) says how much a run memorised instead of learning. The dashed line
is the happy/unhappy threshold: runs to its right are happy.

**CKA heatmap** (Families). One row and one column per run, ordered happy first, then unhappy. Each cell is
the CKA similarity of two runs' representations of the probe set: 1 means the same up to rotation and
scale, 0 means unrelated. AKP predicts a bright happy block (alike) and a darker, patchy unhappy block.

**Dispersion** (Families). For each family, how far each run lies from its family's centre, with distance
1 − CKA (or the angle arccos CKA). One box per family, one dot per run. AKP predicts the unhappy box sits
higher than the happy one.

**PERMDISP p-value and verdict** (Families). The test asks: *is the difference in dispersion between the
families larger than chance would give?* It shuffles runs between families many times and counts how often
a shuffled difference is at least as large as the real one. A small p (e.g. below 0.05) means the
difference is unlikely to be luck. A large p means *no evidence either way*, not proof that families are
equally spread. The verdict sentence says which family is more spread out and whether that supports AKP.

**Model map** (Families). Every run as a dot placed so that runs with similar representations are close
(multidimensional scaling of the 1 − CKA distances). Look for a tight happy cluster and scattered
unhappy dots. The axes have no units: only distances between dots mean something.

**UMAP** (Representations). Every probe image as a dot, placed so that images the model represents
similarly are close. Colour by class to see whether the model separates cancer from non-cancer; by
prediction or correctness to see where it errs. Click a dot to see the cell. The epoch slider replays
training (frames are aligned so dots move smoothly); epochs with a swap event are marked ⚡.

**Convergence** (Families). Mean CKA between runs of the same family at each captured epoch, with a band
for the spread. AKP predicts the happy line rising towards 1 as training goes on, the unhappy one staying
lower or wider.

**Layer-by-layer CKA** (Layers). Compare two runs layer by layer. A bright diagonal means the two runs
build similar representations at the same depth; early layers are usually similar even between unlike
models, later layers are where they differ.
"""
)

st.header("Swap schedules")
st.markdown(
    """
A **swap schedule** says how a run starts (activation, e.g. ReLU; loss, e.g. cross-entropy) and lists
**swap events**: at epoch *e*, the activation and/or the loss becomes another one, and training goes on with
the same weights. A schedule with no events is a steady baseline. A sudden swap to a poorly suited pair
(e.g. sigmoid activation with mean-squared-error loss) is a shock some runs recover from (they stay
happy) and others do not (unhappy). Each schedule is one **condition** of an experiment, trained with
several **seeds**. Design schedules on the **Design** page.
"""
)

st.header("Glossary")
GLOSSARY = {
    "swap event": "At a given epoch, the activation and/or the loss function becomes another one.",
    "swap schedule": "The starting activation and loss plus an ordered list of swap events.",
    "condition": "One swap schedule within an experiment, trained with several seeds.",
    "run": "One model trained under one condition with one seed.",
    "seed": "The number that fixes a run's random choices (initial weights, data order). "
            "Same condition, different seeds: tells chance apart from the schedule's effect.",
    "experiment": "Dataset + model + training budget + conditions + seeds. Its runs share one probe set.",
    "probe set": "A fixed set of held-out images shown to every run of an experiment, so their internal "
                 "representations can be compared image by image.",
    "family": "Happy (test accuracy at or above the rule's threshold: it generalizes) or unhappy. "
              "Decided per run, by a rule you can change.",
    "dispersion": "How far a family's runs are from their family's centre in representation space.",
    "CKA": "Centered Kernel Alignment (Kornblith et al. 2019): similarity of two representations of the same "
           "images, from 0 (unrelated) to 1 (the same up to rotation and scale).",
    "debiased CKA": "CKA with an unbiased estimator (Song et al. 2012), which removes the upward bias of "
                    "plain CKA on few images or many features. It can be slightly negative.",
    "PERMDISP": "Permutation test for homogeneity of multivariate dispersions (Anderson 2006): are some "
                "groups more spread out than others? The p-value comes from shuffling group labels.",
}
st.markdown("\n".join(f"- **{term}**: {meaning}" for term, meaning in GLOSSARY.items()))
ui.download_csv([{"term": k, "meaning": v} for k, v in GLOSSARY.items()], "akp-glossary",
                label="Download the glossary (CSV)", key="learn-glossary-csv")

st.header("Honest caveats")
st.markdown(
    """
- **Small samples.** A class demo trains a handful of runs. With 2-3 runs per family, a permutation
  test has few distinct shuffles: p cannot get very small, and one odd run moves everything. Read the
  plots, not only the p-value, and add seeds before drawing conclusions.
- **Our choices.** The threshold between happy and unhappy, the layer compared, linear CKA, the distance
  (1 − CKA or angular), and the synthetic cell images are choices of ours, not the paper's. Try others: a
  result that holds under several reasonable choices is more believable.
- **Unhappy runs can be degenerate.** A run that collapsed (e.g. predicts one class for every image) may
  have constant representations; CKA is undefined for those and they are left out of the statistics.
  Runs that *nearly* collapsed stay in, and they tend to look alike: each failed the same way.
- **The principle is a hypothesis, and the demo may not be able to test it.** When we ran the `balanced`
  and `teaching` presets ourselves (docs/findings.md), the working routes all learnt, but almost every
  failing route *collapsed*: chance accuracy, one class for every image. Collapsed runs are left out, so
  the unhappy family was too small and the verdict was "too few runs", on the synthetic cells and on real
  PCam patches. Ask the class why: what would a failure "in its own way" need to look like, and which swap
  schedule might produce one that still learns something? A negative result, read honestly, is a result.
- **The untrained floor.** Two *untrained* networks already have a CKA of about 0.8-0.9 at the embedding
  (the heatmap marks it); training did not raise the similarity of a route's seeds above it. Read every
  similarity against that floor.
- **Synthetic data.** The built-in cells are generated, not photographed. They let a class run the whole
  test in minutes on a laptop; they are not evidence about real microscopy.
- **Similarity is not the whole story.** CKA compares representations up to rotation and scale; two
  models can be CKA-similar and still differ in ways CKA cannot see.
"""
)
