"""Plotly figures for AKP Lab: pure functions, data in, figure out (no Streamlit).

:mod:`akp.plots.training` draws training curves and schedule timelines;
:mod:`akp.plots.analysis` draws families, dispersion and projections.
"""
from akp.plots.analysis import *  # noqa: F401,F403
from akp.plots.training import *  # noqa: F401,F403
