"""Plotly figures for AKP Lab: pure functions, data in, figure out (no Streamlit).

:mod:`akp.plots.training` draws training curves and schedule timelines;
:mod:`akp.plots.analysis` draws families, dispersion and projections.
"""
from akp.plots.training import *  # noqa: F401,F403

try:  # the analysis figures are optional for the training-only pages
    from akp.plots.analysis import *  # noqa: F401,F403
except ImportError:  # pragma: no cover - only while analysis.py is missing or its deps are absent
    pass
