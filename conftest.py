"""Root conftest: its presence puts the repository root on ``sys.path`` (pytest's rootdir insertion).

So ``import ui`` (the pages' helper package beside app.py), ``import akp`` and
``from tests...`` work under a bare ``pytest`` from any directory, as they do
under ``python -m pytest`` from the root and under ``streamlit run app.py``.
Fixtures live in ``tests/conftest.py``.
"""
