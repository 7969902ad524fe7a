"""Pictures and widgets for notebooks (matplotlib, ipywidgets, HTML). Not imported by ``import gluekit``.

One module per topic; each function takes gluekit's / the ecosystem's objects and returns a
matplotlib Figure, an ``IPython.display.HTML`` or an ipywidgets widget. The CLI's ``gluekit plot``
draws with :mod:`gluekit.viz.training`, on matplotlib's Agg canvas (no display needed).
"""
