"""Statbox: a JupyterHub-based data-science sandbox for official statistics."""

__version__ = "0.1.0"
